# Trellis developer commands. The README's quick start uses `make run` and `make test`.
GO      ?= go
DEMO    ?= .demo
PKGS    ?= ./...
# -race where it fits CI's time; the isolate package spawns worker processes from the test binary.
TESTFLAGS ?= -race -timeout 25m

.PHONY: run build test test-short bench vet fmt clean

## run: write the sample app to $(DEMO) if missing, then serve it on embedded storage (editor at http://127.0.0.1:8080)
run: build
	@test -f $(DEMO)/app.json || ./bin/trellis init $(DEMO)
	./bin/trellis serve --app $(DEMO)

build:
	$(GO) build -o bin/trellis ./cmd/trellis

## test: the whole suite; real-backend suites run when TRELLIS_TEST_REDIS/CLICKHOUSE/POSTGRES are set (.ci/run sets them)
test:
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)

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
