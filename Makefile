# Trellis developer commands. The README's quick start uses `make run` and `make test`.
GO      ?= go
DEMO    ?= .demo
PKGS    ?= ./...
# -race where it fits CI's time; the isolate package spawns worker processes from the test binary.
TESTFLAGS ?= -race -timeout 25m

.PHONY: run build ui test test-ui test-short fault bench vet fmt clean

## run: write the sample app to $(DEMO) if missing, then serve it on embedded storage (editor at http://127.0.0.1:8080)
run: build
	@test -f $(DEMO)/app.json || ./bin/trellis init $(DEMO)
	@echo "make run: serving the app in $(DEMO)/ on embedded storage (data in $(DEMO)/.trellis/): API, editor and console on"
	@echo "  the address printed next (http://127.0.0.1:8080 unless TRELLIS_ADDR or a trellis.yaml sets another);"
	@echo "  the admin token is printed on first start and kept in $(DEMO)/.trellis/admin-token. Ctrl-C stops."
	./bin/trellis serve --app $(DEMO)

# A cold build says so: downloading modules and compiling the JavaScript engine and the storage
# drivers takes minutes with no output from go build.
build:
	@if [ -x bin/trellis ]; then echo "make: building ./bin/trellis..."; \
	else echo "make: building ./bin/trellis; the first build downloads modules and compiles everything, which takes a few minutes..."; fi
	$(GO) build -o bin/trellis ./cmd/trellis
	@echo "make: built ./bin/trellis ($$(./bin/trellis --version))"

## ui: rebuild the editor and console (web/ui/src → web/ui/dist, which is committed and embedded;
## `go build` needs no Node.js). Needs Node.js 20.19+ and npm; CI fails when dist is stale.
ui:
	cd web/ui && npm ci --no-audit --no-fund && npm run build

## test-ui: only the browser tests (headless Chromium; see web/uitest), verbose, with screenshot paths
test-ui:
	$(GO) test -count=1 -v ./web/uitest

## test: the whole suite; real-backend suites run when TRELLIS_TEST_REDIS/CLICKHOUSE/POSTGRES are set (.ci/run sets them)
test:
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)

## fault: the fault suite (cmd/trellis/faults, docs/cluster.md "Faults tested"): real hosts killed
## with -9, Redis killed, ClickHouse stopped for a minute, timers due while every host is down, a
## host whose clock runs ahead, a poison event. Starts the servers it needs (scripts/services.sh)
## and prints each scenario's figures (lines with FIGURE). About 8 minutes; `make test` skips it.
FAULTFLAGS ?= -timeout 20m
fault:
	@env=$$(bash scripts/services.sh start redis clickhouse postgres) && eval "$$env" && \
		echo "make fault: TRELLIS_TEST_REDIS=$$TRELLIS_TEST_REDIS TRELLIS_TEST_CLICKHOUSE=$$TRELLIS_TEST_CLICKHOUSE" && \
		TRELLIS_FAULT=1 $(GO) test -count=1 -v $(FAULTFLAGS) ./cmd/trellis/faults/

test-short:
	$(GO) test -short $(PKGS)

## bench: the Go benchmarks behind BENCHMARKS.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin $(DEMO)
