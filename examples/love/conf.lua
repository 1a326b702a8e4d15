-- LÖVE 11.4 settings. This example has nothing to show, so it runs without a window, graphics
-- or sound: `SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy love examples/love` needs no display.
-- A real game keeps window and graphics on and draws in love.draw.
-- luacheck: globals love
function love.conf(t)
  t.version = "11.4"
  t.window = false
  local m = t.modules
  m.window, m.graphics, m.image, m.font, m.video = false, false, false, false, false
  m.audio, m.sound = false, false
  m.joystick, m.keyboard, m.mouse, m.touch, m.physics = false, false, false, false, false
  -- kept: event (love.event.quit), timer (the frame loop, love.timer.getTime), filesystem
end
