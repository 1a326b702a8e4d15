# lua-itnio: `make check` is the one command that installs, builds and runs everything.
# Build for another Lua with LUA=luajit, lua5.1, lua5.2 or lua5.3 (build/<lua>/itnio/core.so).
# EVENTS=poll builds the multi handle on poll(2), the backend of the systems without epoll
# (build/<lua>-poll/); TEST_ENDPOINT=1 adds the small test endpoint of schema.c
# (build/<lua>-test-endpoint/). Each build keeps its own directory.

LUA      ?= lua5.4
EVENTS   ?= epoll
VARIANT  := $(if $(filter poll,$(EVENTS)),-poll)$(if $(TEST_ENDPOINT),-test-endpoint)
BUILD    := build/$(LUA)$(VARIANT)
SO       := $(BUILD)/itnio/core.so
SRCS     := $(wildcard csrc/*.c)
HDRS     := $(wildcard csrc/*.h)
# The command line's own C module (its unit, not the client's: rockspec/itnio-cli-scm-1.rockspec).
CLI_SO   := $(BUILD)/itnio/cli/signals.so
OTHER_LUAS := lua5.1 lua5.2 lua5.3

CC       ?= cc
OPT      ?= -O2 -g
CWARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
ifneq ($(CI),)
  CWARN  += -Werror
endif
DEFS     := $(if $(filter poll,$(EVENTS)),-DITNIO_EVENTS_POLL) $(if $(TEST_ENDPOINT),-DITNIO_TEST_ENDPOINT)
# The one set of flags every build of the core starts from (module, static library, sanitizers,
# fuzzers): pkg-config's for the Lua it is for ($(1)), libcurl and OpenSSL.
core_cflags = -std=gnu11 -fPIC -fvisibility=hidden $(CWARN) $(DEFS) \
              $(shell pkg-config --cflags $(1) libcrypto libcurl hiredis) $(CFLAGS)
PKG_LIBS    = $(shell pkg-config --libs libcrypto libcurl hiredis)
LDFLAGS_ALL = -shared $(LDFLAGS)

# busted runs under the Lua it is given; Debian's /usr/bin/busted would pick `lua`.
BUSTED    = /usr/bin/busted
LPATH     = lua/?.lua;lua/?/init.lua;spec/?.lua;examples/testing/?.lua
busted    = $(1) $(BUSTED) -o plainTerminal --cpath='$(2)/?.so' --lpath='$(LPATH)'
CORE_SPECS := $(wildcard spec/core_*_spec.lua)
# Under the sanitizers and valgrind: the core's specs, the client's (which drive http.c), the
# jobs' (which drive multi.c: many transfers, cancel, close and GC mid-transfer), the
# regression specs (but those of the nginx reader: their code runs inside nginx, not in the
# instrumented Lua) and the property specs of the answer path and of jobs under hostile
# callers (fewer cases under valgrind, where ASan has run the full count already), and the
# store's (which drive redis.c's connections, blocking and on the multi handle).
MEM_SPECS  := $(CORE_SPECS) spec/client_spec.lua spec/errors_spec.lua spec/jobs_spec.lua \
              $(filter-out spec/regress/ngx_%,$(wildcard spec/regress/*_spec.lua)) \
              spec/property/answers_spec.lua spec/property/jobs_spec.lua spec/store_spec.lua

.PHONY: all deps build lint doc test test-luajit $(addprefix test-,$(OTHER_LUAS)) test-poll test-endpoint \
        asan valgrind fuzz check demo bench clean

all: build
build: $(SO) $(CLI_SO)

deps:
	@sh tools/install-deps

$(SO): $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(call core_cflags,$(LUA)) $(SRCS) -o $@ $(LDFLAGS_ALL) $(PKG_LIBS)
	@tools/check-exports $@

$(CLI_SO): csrc/cli/signals.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -std=gnu11 -fPIC -fvisibility=hidden $(CWARN) $(shell pkg-config --cflags $(LUA)) $(CFLAGS) \
	  $< -o $@ $(LDFLAGS_ALL)
	@tools/check-exports $@ luaopen_itnio_cli_signals

# The suites. Each is a make target of its own; `make check` runs them all and sums up.
lint:
	luacheck -q $(wildcard lua examples spec bench) bin/itnio bin/itnio-sandbox tools/bench-readme tools/check-doc

# The sandbox runs inside nginx (LuaJIT), so the suite needs the LuaJIT build too; the
# campaign spec runs bin/itnio under Lua 5.4 and 5.1, so it needs the 5.1 build.
test: build
	@$(MAKE) --no-print-directory LUA=luajit build
	@$(MAKE) --no-print-directory LUA=lua5.1 build
	$(call busted,lua5.4,build/lua5.4) spec/ examples/testing/

# The specs of code that runs elsewhere whatever the runner's Lua (inside nginx's LuaJIT, in
# LÖVE, in bin/itnio run as a command): `test` runs them once; another copy under each other
# runner would cost minutes and test nothing new.
ELSEWHERE     := spec/ngx_spec.lua spec/ngx_reader_spec.lua spec/openresty_example_spec.lua \
                 spec/sandbox_spec.lua spec/love_spec.lua spec/cli_spec.lua spec/campaign_spec.lua \
                 spec/fleet_spec.lua spec/fleet_store_spec.lua spec/cli_store_spec.lua spec/hosts_spec.lua \
                 spec/campaign_progress_spec.lua \
                 $(wildcard spec/regress/ngx_*_spec.lua) spec/property/ngx_answers_spec.lua
RUNNER_SPECS  := $(filter-out $(ELSEWHERE),$(wildcard spec/*_spec.lua spec/*/*_spec.lua)) \
                 $(wildcard examples/testing/*_spec.lua)

# The suites whose code runs in the runner's Lua, under LuaJIT: the core, and the Lua layer
# that OpenResty runs.
test-luajit: build
	@$(MAKE) --no-print-directory LUA=luajit build
	$(call busted,luajit,build/luajit) $(RUNNER_SPECS)

# And under every other Lua a host may embed (FreeSWITCH, Asterisk: 5.1 .. 5.4). Lua 5.2 and
# 5.3 leave out the specs tagged #timing (deadlines, pacing, 10,000 jobs): their code is the
# Lua layer's, which 5.1, 5.4 and LuaJIT already time, and they cost a minute a run; and the
# specs of the docs and of the tree, which read files (their Lua blocks run under 5.1, 5.4 and
# LuaJIT, the range's two ends and OpenResty's).
test-lua5.1: test-%: build
	@$(MAKE) --no-print-directory LUA=luajit build
	@$(MAKE) --no-print-directory LUA=$* build
	$(call busted,$*,build/$*) $(RUNNER_SPECS)
DOC_SPECS := spec/docs_spec.lua spec/readme_spec.lua spec/check_doc_spec.lua spec/shape_spec.lua \
             spec/rules_doc_spec.lua
test-lua5.2 test-lua5.3: test-%: build
	@$(MAKE) --no-print-directory LUA=luajit build
	@$(MAKE) --no-print-directory LUA=$* build
	$(call busted,$*,build/$*) --exclude-tags=timing $(filter-out $(DOC_SPECS),$(RUNNER_SPECS))

# The jobs' specs again with the core built on poll(2) (EVENTS=poll), the event backend of
# macOS and the BSDs: the portable backend is tested here, on Linux.
POLL_SPECS := spec/jobs_spec.lua spec/property/jobs_spec.lua $(wildcard spec/regress/jobs_*_spec.lua)
test-poll:
	@$(MAKE) --no-print-directory LUA=luajit build
	@$(MAKE) --no-print-directory EVENTS=poll build
	ITNIO_EXPECT_EVENTS=poll $(call busted,lua5.4,build/lua5.4-poll) $(POLL_SPECS)

# A core with a second, small endpoint (TEST_ENDPOINT=1, schema.c): it must get a client
# method, a batch, a sandbox route and a command of the command line with no other change
# (doc/architecture.md, "A second endpoint"). spec/endpoint/second.lua: not a *_spec.lua.
test-endpoint: build
	@$(MAKE) --no-print-directory LUA=luajit TEST_ENDPOINT=1 build
	@$(MAKE) --no-print-directory TEST_ENDPOINT=1 build
	ITNIO_SANDBOX_CPATH=$(CURDIR)/build/luajit-test-endpoint \
	  $(call busted,lua5.4,build/lua5.4-test-endpoint) spec/endpoint/second.lua

# AddressSanitizer + UBSan: the core built instrumented, run by a small Lua 5.4 interpreter
# linked with their runtime (tools/asan-lua.c), so nothing is preloaded and the programs the
# specs start (nginx, sh) run as they would anywhere. The #rss specs (a process's peak memory)
# are left out: under ASan that peak is its shadow memory and quarantine.
ASAN_SO  := build/asan/itnio/core.so
ASAN_LUA := build/asan/lua
ASAN_CC   = $(CC) -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
$(ASAN_SO): $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(call core_cflags,lua5.4) $(SRCS) -o $@ $(LDFLAGS_ALL) $(PKG_LIBS)
$(ASAN_LUA): tools/asan-lua.c Makefile
	@mkdir -p $(dir $@)
	$(ASAN_CC) -rdynamic $(CWARN) $(shell pkg-config --cflags lua5.4) $< -o $@ $(shell pkg-config --libs lua5.4) -lm
asan: $(ASAN_SO) $(ASAN_LUA)
	@$(MAKE) --no-print-directory LUA=luajit build
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(call busted,$(ASAN_LUA),build/asan) --exclude-tags=rss $(MEM_SPECS)

VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
           --show-leak-kinds=definite --track-origins=yes
# Under valgrind, the #timing specs (bounds on elapsed time) and the #big ones (10 MB bodies,
# 10,000 nodes, 1,500 tasks: half a minute there, the same paths as smaller inputs) are left
# out; ASan runs both.
valgrind: build
	@$(MAKE) --no-print-directory LUA=luajit build
	ITNIO_PROPERTY_CASES=150 $(call busted,$(VALGRIND) lua5.4,build/lua5.4) --exclude-tags=timing,big,rss $(MEM_SPECS)

# The API reference (LDoc): build/doc/index.html from the doc comments of the Lua layer and
# of the core's C functions (doc/config.ld). Fails on any LDoc warning and, by tools/check-doc,
# on a public function or parameter without a description, an empty summary, raw HTML in a
# doc comment, or a page left in plain text.
doc:
	ldoc -c doc/config.ld --fatalwarnings .
	lua5.4 tools/check-doc .

check: deps
	@tools/check

# README's first command: a successful update against the sandbox, end to end.
demo: deps build
	@$(MAKE) --no-print-directory LUA=luajit build
	@tools/demo

# Ratios against peers, side by side in one run (bench/run); the table lands in build/bench.txt,
# and tools/bench-readme writes doc/performance.md's table from it (via bench/results.tsv).
bench: deps build
	@$(MAKE) --no-print-directory LUA=luajit build
	@bench/run
	@lua5.4 tools/bench-readme build/bench.tsv

clean:
	rm -rf build
	rm -f csrc/*.o csrc/cli/*.o itnio/core.so itnio/cli/signals.so   # left by `luarocks make` runs
	@rmdir itnio/cli itnio 2>/dev/null || true

# libFuzzer: the encoder (fuzz/fuzz_encode.c), response handling (fuzz/fuzz_response.c) and
# the multi handle's life cycle (fuzz/fuzz_multi.c, against loopback listeners on a thread),
# each seeded from fuzz/seeds-<name>; a short run in `make check`, longer with FUZZ_SECONDS=600.
FUZZERS      := encode response multi
FUZZ_SECONDS ?= 20
build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/harness.h $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	clang -g -O1 $(call core_cflags,lua5.4) -pthread -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=all $< $(SRCS) -o $@ $(shell pkg-config --libs lua5.4 libcrypto libcurl hiredis) -lm -lpthread
# The fuzzers run side by side (each is one process; the machine's cores share them), then
# each one's outcome is told in turn.
fuzz: $(addprefix build/fuzz/fuzz_,$(FUZZERS))
	@for f in $(FUZZERS); do \
	  mkdir -p build/fuzz/corpus-$$f; \
	  ( ASAN_OPTIONS=detect_leaks=1 build/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    -print_final_stats=1 build/fuzz/corpus-$$f fuzz/seeds-$$f > build/fuzz/$$f.log 2>&1; \
	    echo $$? > build/fuzz/$$f.rc ) & \
	done; wait; \
	for f in $(FUZZERS); do \
	  rc=$$(cat build/fuzz/$$f.rc); grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' build/fuzz/$$f.log; \
	  if [ "$$rc" -ne 0 ]; then \
	    tail -n 40 build/fuzz/$$f.log; \
	    echo "fuzz $$f: FAILED (exit $$rc); see build/fuzz/$$f.log and the crash-* file"; exit 1; \
	  fi; \
	  echo "fuzz $$f: no crash, no leak, no broken oracle in $(FUZZ_SECONDS) s"; \
	done

# A C host (doc/embedding.md): `make static` puts the core and the client's
# Lua layer (as source text in C arrays, written by tools/embed-lua.lua) into
# build/libitnio.a for Lua 5.4, with itnio_preload (embed/, csrc/itnio_embed.h). The client
# only: the test kit and the command line are units of their own, and the nginx transport
# (itnio.internal.cosocket) needs ngx cosockets.
# `make embed` builds examples/embed/host.c against it, and again with everything under
# ThreadSanitizer, and runs spec/embed/host.lua (not a *_spec.lua: `make test` leaves it out).
.PHONY: static embed
STATIC       := build/libitnio.a
EMBED_LUA    := $(filter-out lua/itnio/internal/cosocket.lua, \
                  $(wildcard lua/itnio/*.lua lua/itnio/internal/*.lua))
STATIC_FLAGS  = $(OPT) $(call core_cflags,lua5.4)
STATIC_OBJS  := $(patsubst csrc/%.c,build/static/%.o,$(SRCS)) build/static/itnio_embed.o \
                build/static/itnio_chunks.o
HOST_LIBS     = $(shell pkg-config --libs lua5.4 libcurl libcrypto hiredis) -lm -lpthread

build/embed/itnio_chunks.c: tools/embed-lua.lua $(EMBED_LUA)
	@mkdir -p $(dir $@)
	lua5.4 tools/embed-lua.lua $@ $(EMBED_LUA)
build/static/%.o: csrc/%.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(STATIC_FLAGS) -c $< -o $@
build/static/itnio_embed.o: embed/itnio_embed.c embed/itnio_chunks.h csrc/itnio_embed.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(STATIC_FLAGS) -Icsrc -Iembed -c $< -o $@
build/static/itnio_chunks.o: build/embed/itnio_chunks.c embed/itnio_chunks.h
	@mkdir -p $(dir $@)
	$(CC) $(STATIC_FLAGS) -Iembed -c $< -o $@
$(STATIC): $(STATIC_OBJS)
	rm -f $@
	ar rcs $@ $^
static: $(STATIC)

build/embed/host: examples/embed/host.c csrc/itnio_embed.h $(STATIC)
	$(CC) $(OPT) $(call core_cflags,lua5.4) -pthread -Icsrc $< $(STATIC) -o $@ $(HOST_LIBS)
# The host, the core and itnio_preload instrumented (Lua, libcurl and OpenSSL are not).
build/embed/host-tsan: examples/embed/host.c embed/itnio_embed.c build/embed/itnio_chunks.c \
                       $(SRCS) $(HDRS) csrc/itnio_embed.h Makefile
	clang -g -O1 $(call core_cflags,lua5.4) -fsanitize=thread -pthread -Icsrc -Iembed $< \
	  embed/itnio_embed.c build/embed/itnio_chunks.c $(SRCS) -o $@ $(HOST_LIBS)
embed: build/embed/host build/embed/host-tsan
	@$(MAKE) --no-print-directory LUA=luajit build
	$(call busted,lua5.4,build/lua5.4) spec/embed/host.lua

# LuaRocks (README, "Installing"): spec/rock/install.lua checks that the three rockspecs map
# exactly csrc/*.c and the modules of lua/itnio, each in its unit, runs `luarocks make
# --deps-mode=none` into temporary trees for Lua 5.4 and 5.1 (from a copy of the sources): the
# client alone, then the command line, then the sandbox as a user installs it; and checks the
# rocks' C modules with tools/check-exports. Not a *_spec.lua: `make test` leaves it out.
.PHONY: rock
rock:
	$(call busted,lua5.4,build/lua5.4) spec/rock/install.lua

# Each target with one line (README's map points here). spec/readme_spec.lua checks that it
# names every target the Makefile declares phony.
.PHONY: help
help:
	@echo 'make demo            the sandbox, examples/update_recall.lua against it over HTTPS, the stored task'
	@echo 'make check           deps, the suites (lint doc test* asan valgrind fuzz embed rock), `N passed, N failed`'
	@echo 'make deps            installs the Debian packages (apt-get; quiet when all is there)'
	@echo 'make build           build/lua5.4/itnio/core.so (LUA=luajit, lua5.1, lua5.2, lua5.3: build/<lua>/)'
	@echo 'make all             the same as make build, what a plain make does'
	@echo 'make lint            luacheck over lua/, examples/, spec/, bench/, bin/itnio, bin/itnio-sandbox and the Lua tools'
	@echo 'make doc             the API reference, build/doc/index.html (LDoc; tools/check-doc fails a gap)'
	@echo 'make test            the busted suites under Lua 5.4 (sandboxes start and stop by themselves)'
	@echo 'make test-luajit     the suites of code that runs in the runner'"'"'s Lua, under LuaJIT'
	@echo 'make test-lua5.1     the same under Lua 5.1'
	@echo 'make test-lua5.2     the same under Lua 5.2, the #timing specs left out'
	@echo 'make test-lua5.3     the same under Lua 5.3, the #timing specs left out'
	@echo 'make test-poll       the jobs'"'"' specs on the poll(2) event backend (EVENTS=poll builds it)'
	@echo 'make test-endpoint   a core with a second, small endpoint, through every layer'
	@echo 'make asan            the memory-sensitive suites with the core under ASan + UBSan'
	@echo 'make valgrind        the same under valgrind (#timing and #big specs left out)'
	@echo 'make fuzz            libFuzzer on the encoder, response handling and the multi handle (FUZZ_SECONDS=20)'
	@echo 'make static          build/libitnio.a: the core and the client'"'"'s Lua layer for a C host (Lua 5.4)'
	@echo 'make embed           examples/embed/host.c against it: plain, threaded, under ThreadSanitizer'
	@echo 'make rock            the three rockspecs, luarocks make for Lua 5.4 and 5.1 into temporary trees'
	@echo 'make bench           the ratios of doc/performance.md (minutes); rewrites its table and bench/results.tsv'
	@echo 'make clean           removes build/, and the client'"'"'s files that luarocks make left in the checkout'
	@echo 'make help            this list'
