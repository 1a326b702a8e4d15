-- The task every benchmark sends: keyId 299 (Pending in the sandbox) with two voice nodes,
-- one text-to-speech with hang-up SMS push flags, one uploaded voice file with transfer to an
-- agent by keypress. Fields and values as in the vendor's recallFlow/update page.
-- Returns a function that makes a fresh copy, so no run can see another's table.
return function()
  return {
    keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
    nodeList = {
      { source = 3, text = "Hello, this is a reminder: your parcel arrives tomorrow between 9 and 12.",
        lan = "en-US", speakingRate = 1.0, ssmlGender = 2,
        hangUpSms = 1, smsContent = "Your parcel ${text1} arrives ${text2}. Reply 1 to confirm.",
        senderId = "ITNIO", feedbackPush = 1, feedbackValue = "1",
        successPush = 1, successPushTime = 30, failedPush = 1, ringPush = 0, toSeat = 0 },
      { source = 1, voiceFileId = "120250811103439c1901f4c53b691b419ad8a143b.wav",
        hangUpSms = 0, toSeat = 1, sipGroupId = 1000038, outboundControl = 1, calloutRate = 1,
        toSeatType = 2, toSeatKey = "1", delayTransfer = 0 },
    },
  }
end
