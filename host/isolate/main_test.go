package isolate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
)

// envFake makes a test worker run fakeExecutor instead of a jsvm.VM, so the supervisor and the
// protocol can be tested on behaviours JavaScript cannot produce on demand (a Go panic, a busy
// loop that ignores ctx, a given RSS growth).
const envFake = "TRELLIS_ISOLATE_TEST_FAKE"

// envFailStart names a file whose existence makes a test worker exit before its handshake: a
// worker binary that has become broken.
const envFailStart = "TRELLIS_ISOLATE_TEST_FAIL_IF_EXISTS"

func TestMain(m *testing.M) {
	if IsWorker() {
		if path := os.Getenv(envFailStart); path != "" {
			if _, err := os.Stat(path); err == nil {
				fmt.Fprintln(os.Stderr, "test worker: told to fail at start")
				os.Exit(1)
			}
		}
		if os.Getenv(envFake) == "1" {
			workerMain(newFakeExecutor)
		}
		WorkerMain()
	}
	os.Exit(m.Run())
}

// fakeExecutor runs Go behaviours named by Call.Function.
type fakeExecutor struct {
	opts jsvm.Options
	mu   sync.Mutex
	src  *jsvm.Source
}

func newFakeExecutor(o jsvm.Options) (jsvm.Executor, error) { return &fakeExecutor{opts: o}, nil }

func (f *fakeExecutor) Load(src *jsvm.Source) error {
	if src.AppName == "broken" {
		return errors.Join(
			&jsvm.Error{Code: jsvm.CodeJSError, Message: "SyntaxError: Unexpected token", File: "services/A/index.js", Line: 1, Column: 5},
			&jsvm.Error{Code: jsvm.CodeJSError, Message: "SyntaxError: Unexpected end", File: "services/B/index.js", Line: 2, Column: 1})
	}
	f.mu.Lock()
	f.src = src
	f.mu.Unlock()
	return nil
}

func (f *fakeExecutor) Close() error { return nil }

var sink [][]byte

func (f *fakeExecutor) Execute(ctx context.Context, call jsvm.Call) (jsvm.Result, error) {
	f.mu.Lock()
	src := f.src
	f.mu.Unlock()
	app := ""
	if src != nil {
		app = src.AppName
	}
	switch call.Function {
	case "echo":
		return jsvm.Result{Value: map[string]any{"args": call.Args, "app": app, "limits": map[string]any{
			"timeout": call.Limits.Timeout.String(), "memory": call.Limits.MemoryBytes}}}, nil
	case "special":
		return jsvm.Result{Value: []any{math.NaN(), math.Inf(-1), int64(math.MaxInt64), 0.5, time.Date(2024, 2, 29, 12, 0, 0, 5, time.UTC), nil}}, nil
	case "wait":
		// Blocks until ctx ends or the host call "release" answers: reports the app it started on.
		_, err := f.opts.Host.CallHost(ctx, jsvm.HostCall{FullName: "test", Method: "block"})
		return jsvm.Result{Value: app}, err
	case "swallow":
		// Calls the host and answers success whatever the call gave, as an execution that ended
		// before it heard of its cancel or deadline would.
		v, err := f.opts.Host.CallHost(ctx, jsvm.HostCall{FullName: "test", Method: "block"})
		return jsvm.Result{Value: fmt.Sprint(v, err)}, nil
	case "spin":
		for {
		}
	case "grow":
		for { // touches 4 MiB at a time, ignoring ctx: only the RSS safeguard stops it
			b := make([]byte, 4<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			sink = append(sink, b)
		}
	case "huge":
		b := make([]byte, 3<<30)
		b[len(b)-1] = 1
		sink = append(sink, b)
		return jsvm.Result{}, nil
	case "retain":
		// Module-level state that piles up: 24 MiB kept per call, under the cap each time.
		b := make([]byte, 24<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		sink = append(sink, b)
		return jsvm.Result{Value: int64(os.Getpid())}, nil
	case "recurse":
		return jsvm.Result{Value: recurse(1)}, nil
	case "panic":
		go func() { panic("fake: boom") }()
		select {}
	case "print":
		fmt.Println("this line must not reach the protocol")
		fmt.Fprintln(os.Stdout, "nor this one")
		return jsvm.Result{Value: "printed"}, nil
	case "hugelogs":
		// What no cap of the VM would let through: the host's frame bound must stop it.
		line := strings.Repeat("l", 1<<20)
		logs := make([]jsvm.LogEntry, 96)
		for i := range logs {
			logs[i] = jsvm.LogEntry{Level: "log", Message: line}
		}
		return jsvm.Result{Value: "ok", Logs: logs}, nil
	case "bigresult":
		return jsvm.Result{Value: string(make([]byte, 2*call.Limits.MemoryBytes))}, nil
	}
	return jsvm.Result{}, &jsvm.Error{Code: jsvm.CodeNotFound, Message: "fake: no function " + call.Function}
}

func recurse(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	return recurse(n+1) + int(pad[(n+1)%256])
}
