package isolate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// newFakePool starts a pool of fake-executor workers (see main_test.go) with small caps.
func newFakePool(t testing.TB, opts Options) *Pool {
	t.Helper()
	opts.Env = append(opts.Env, envFake+"=1")
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	if opts.Limits.MemoryBytes == 0 {
		opts.Limits.MemoryBytes = 64 << 20
	}
	if opts.Limits.Timeout == 0 {
		opts.Limits.Timeout = 5 * time.Second
	}
	p, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	require.NoError(t, p.Load(&jsvm.Source{AppName: "v1", Elements: map[string]*jsvm.Element{"x": {FullName: "x", Kind: jsvm.KindJS}}}))
	return p
}

func requireCode(t *testing.T, err error, code string) *jsvm.Error {
	t.Helper()
	require.Error(t, err)
	var je *jsvm.Error
	require.True(t, errors.As(err, &je), "want a *jsvm.Error with code %s, got %T: %v", code, err, err)
	require.Equal(t, code, je.Code, "message: %s", je.Message)
	return je
}

// echo runs a trivial call and requires it to succeed: the pool still serves.
func echo(t *testing.T, p *Pool) {
	t.Helper()
	res, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo", Args: []any{"ping"}})
	require.NoError(t, err)
	require.Equal(t, []any{"ping"}, res.Value.(map[string]any)["args"])
}

// hostile runs call while a trivial call runs on another worker, and returns the hostile call's
// error and how long it took. Afterwards the pool must still serve.
func hostile(t *testing.T, p *Pool, call jsvm.Call) (error, time.Duration) {
	t.Helper()
	type out struct {
		err  error
		took time.Duration
	}
	done := make(chan out, 1)
	go func() {
		start := time.Now()
		_, err := p.Execute(context.Background(), call)
		done <- out{err, time.Since(start)}
	}()
	echo(t, p)
	o := <-done
	echo(t, p)
	echo(t, p)
	return o.err, o.took
}

func TestValuesKeepTheirTypesAcrossThePipe(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{Workers: 1})
	when := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("", 3600))
	args := []any{int64(1) << 60, 1.5, "s", true, nil, when, []any{int64(1), "a"}, map[string]any{"k": []any{}},
		[]string{"converted"}, map[string]int{"n": 3}, struct {
			A int `json:"a"`
		}{7}}
	res, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo", Args: args})
	require.NoError(t, err)
	got := res.Value.(map[string]any)
	require.Equal(t, "v1", got["app"])
	require.Equal(t, []any{int64(1) << 60, 1.5, "s", true, nil, when, []any{int64(1), "a"}, map[string]any{"k": []any{}},
		[]any{"converted"}, map[string]any{"n": 3}, map[string]any{"a": int64(7)}}, got["args"], "a struct crosses through its JSON form, integers exact (vocab.ViaJSON)")
	require.True(t, got["args"].([]any)[5].(time.Time).Equal(when))

	res, err = p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "special"})
	require.NoError(t, err)
	v := res.Value.([]any)
	require.True(t, math.IsNaN(v[0].(float64)))
	require.True(t, math.IsInf(v[1].(float64), -1))
	require.Equal(t, int64(math.MaxInt64), v[2])
	require.Equal(t, 0.5, v[3])
	require.Equal(t, time.Date(2024, 2, 29, 12, 0, 0, 5, time.UTC), v[4].(time.Time).UTC())
	require.Nil(t, v[5])
}

func TestLimitsAreResolvedBeforeTheWorker(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{Workers: 1, Limits: jsvm.Limits{Timeout: 3 * time.Second, MemoryBytes: 48 << 20}})
	require.NoError(t, p.Load(&jsvm.Source{AppName: "v2", Elements: map[string]*jsvm.Element{
		"x":    {FullName: "x", Kind: jsvm.KindJS},
		"slow": {FullName: "slow", Kind: jsvm.KindJS, Timeout: 7 * time.Second},
	}}))
	res, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo"})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"timeout": "3s", "memory": int64(48 << 20)}, res.Value.(map[string]any)["limits"])
	res, err = p.Execute(context.Background(), jsvm.Call{Element: "slow", Function: "echo"})
	require.NoError(t, err)
	require.Equal(t, "7s", res.Value.(map[string]any)["limits"].(map[string]any)["timeout"])
	res, err = p.Execute(context.Background(), jsvm.Call{Element: "slow", Function: "echo", Limits: jsvm.Limits{Timeout: time.Second}})
	require.NoError(t, err)
	require.Equal(t, "1s", res.Value.(map[string]any)["limits"].(map[string]any)["timeout"])
}

func TestStuckWorkerIsKilledAtTheDeadline(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{})
	const timeout = 300 * time.Millisecond
	err, took := hostile(t, p, jsvm.Call{Element: "x", Function: "spin", Limits: jsvm.Limits{Timeout: timeout}})
	je := requireCode(t, err, jsvm.CodeTimeout)
	require.Contains(t, je.Message, "killed")
	require.Equal(t, "x", je.Element, "the error names the element, as the VM's do")
	require.GreaterOrEqual(t, took, timeout)
	require.Less(t, took, timeout+500*time.Millisecond, "a stuck worker must be killed shortly after its deadline (KillGrace 20ms)")
	t.Logf("stuck execution ended %v after its deadline", took-timeout)
}

func TestRSSSafeguardKillsAGrowingWorker(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{})
	err, _ := hostile(t, p, jsvm.Call{Element: "x", Function: "grow"})
	je := requireCode(t, err, jsvm.CodeMemoryLimit)
	t.Log(je.Message)
}

func TestHugeAllocationDiesOnTheAddressSpaceCap(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{})
	err, took := hostile(t, p, jsvm.Call{Element: "x", Function: "huge"})
	je := requireCode(t, err, jsvm.CodeMemoryLimit)
	require.Contains(t, je.Message, "out of memory")
	t.Logf("%v: %s", took, je.Message)
}

func TestGoStackBlowUpIsStackOverflow(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{})
	err, took := hostile(t, p, jsvm.Call{Element: "x", Function: "recurse"})
	requireCode(t, err, jsvm.CodeStackOverflow)
	t.Logf("stack overflow reported after %v", took)
}

func TestCrashIsReportedWithItsCause(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{})
	err, _ := hostile(t, p, jsvm.Call{Element: "x", Function: "panic"})
	je := requireCode(t, err, jsvm.CodeJSError)
	require.Contains(t, je.Message, "crashed")
	require.Contains(t, je.Message, "panic: fake: boom")
}

func TestStdoutOfTheWorkerIsGuarded(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{Workers: 1})
	for range 3 {
		res, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "print"})
		require.NoError(t, err)
		require.Equal(t, "printed", res.Value)
	}
	echo(t, p)
}

func TestResultLargerThanTheCapIsRefused(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{Workers: 1, Limits: jsvm.Limits{MemoryBytes: 16 << 20}})
	_, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "bigresult"})
	requireCode(t, err, jsvm.CodeMemoryLimit)
	echo(t, p)
}

// A canceled execution that does not stop (stuck where the VM's interrupt cannot reach) is
// killed KillGrace after the cancel; the conformance suite covers cancels the VM answers itself.
func TestCancelKillsAStuckExecution(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Execute(ctx, jsvm.Call{Element: "x", Function: "spin"})
		done <- err
	}()
	cancel()
	requireCode(t, <-done, jsvm.CodeCanceled)
	echo(t, p)
}

// An execution whose ctx has ended by the time its worker answers (its caller canceled, or its
// deadline passed, during a host call) ends canceled or timeout, even when the worker answers a
// success: the supervisor knows its own ctx. The conformance suite covers the worker's VM
// ending such an execution itself.
func TestEndedExecutionEndsWhateverTheWorkerAnswers(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	host := jsvm.HostCallerFunc(func(ctx context.Context, call jsvm.HostCall) (any, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	p := newFakePool(t, Options{Workers: 1, Host: host})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		res, err := p.Execute(ctx, jsvm.Call{Element: "x", Function: "swallow"})
		if err == nil {
			err = fmt.Errorf("no error; value %v", res.Value)
		}
		done <- err
	}()
	<-entered
	cancel()
	requireCode(t, <-done, jsvm.CodeCanceled)
	echo(t, p)

	res, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "swallow", Limits: jsvm.Limits{Timeout: 100 * time.Millisecond}})
	<-entered
	require.Nil(t, res.Value)
	requireCode(t, err, jsvm.CodeTimeout)
	echo(t, p)
}

// Load(nil) is ErrNilSource (the conformance suite checks only that it fails); a failed Load
// keeps the last good version, with every problem the VM reported (SyntaxErrorAtLoad).
func TestLoadNilIsErrNilSource(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{Workers: 1})
	require.ErrorIs(t, p.Load(nil), ErrNilSource)
	echo(t, p)
}

func TestReplacementWorkersGetTheCurrentSource(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{Workers: 1, Spares: -1})
	require.NoError(t, p.Load(&jsvm.Source{AppName: "v3", Elements: map[string]*jsvm.Element{"x": {FullName: "x", Kind: jsvm.KindJS}}}))
	_, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "panic"})
	requireCode(t, err, jsvm.CodeJSError)
	res, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo"})
	require.NoError(t, err)
	require.Equal(t, "v3", res.Value.(map[string]any)["app"])
}

func TestBrokenWorkerBinaryIsReportedNotRetriedInALoop(t *testing.T) {
	t.Parallel()
	_, err := New(Options{Command: []string{"/bin/false"}, Workers: 1})
	require.ErrorIs(t, err, ErrWorkerStart)
	require.Contains(t, err.Error(), "/bin/false")

	_, err = New(Options{Command: []string{filepath.Join(t.TempDir(), "missing")}, Workers: 1})
	require.ErrorIs(t, err, ErrWorkerStart)

	// A binary that breaks after the pool started: executions get "unavailable" once starts
	// keep failing, and starts are spaced out.
	flag := filepath.Join(t.TempDir(), "fail")
	p := newFakePool(t, Options{Workers: 1, Spares: -1, Env: []string{envFailStart + "=" + flag}})
	require.NoError(t, os.WriteFile(flag, nil, 0o600))
	_, err = p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "panic"})
	requireCode(t, err, jsvm.CodeJSError)
	begin := time.Now()
	require.Eventually(t, func() bool {
		_, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo"})
		var je *jsvm.Error
		return errors.As(err, &je) && je.Code == jsvm.CodeUnavailable
	}, 10*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(begin), firstBackoff*3, "failed starts are spaced out")

	// Once the binary works again, the pool recovers by itself.
	require.NoError(t, os.Remove(flag))
	require.Eventually(t, func() bool {
		_, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo"})
		return err == nil
	}, 15*time.Second, 20*time.Millisecond)
}

func TestOptionsAreValidated(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{Workers: -1},
		{KillGrace: -time.Second},
		{Command: []string{""}},
		{Limits: jsvm.Limits{MemoryBytes: 1 << 20}},
	} {
		_, err := New(o)
		require.ErrorIs(t, err, ErrInvalidOptions, "%+v", o)
	}
}

func TestWorkerWhoseMemoryPilesUpIsRetired(t *testing.T) {
	t.Parallel()
	p := newFakePool(t, Options{Workers: 1, Spares: -1, Limits: jsvm.Limits{MemoryBytes: 32 << 20}})
	first, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "retain"})
	require.NoError(t, err)
	// Each call keeps 24 MiB: within its own 32 MiB cap, but the worker as a whole passes twice
	// the cap after a few calls and is replaced by a fresh one, without failing any call.
	pids := map[int64]bool{first.Value.(int64): true}
	for range 6 {
		res, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "retain"})
		require.NoError(t, err)
		pids[res.Value.(int64)] = true
	}
	require.Greater(t, len(pids), 1, "the worker was never replaced")
}

func TestCancelWhileWaitingForAWorker(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	host := jsvm.HostCallerFunc(func(ctx context.Context, call jsvm.HostCall) (any, error) {
		entered <- struct{}{}
		<-release
		return nil, nil
	})
	p := newFakePool(t, Options{Workers: 1, Host: host})
	done := make(chan error, 1)
	go func() {
		_, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "wait"})
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Execute(ctx, jsvm.Call{Element: "x", Function: "echo"})
	requireCode(t, err, jsvm.CodeCanceled)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = p.Execute(ctx, jsvm.Call{Element: "x", Function: "echo"})
	requireCode(t, err, jsvm.CodeTimeout)
	close(release)
	require.NoError(t, <-done)
	echo(t, p)
}

// Every worker that ends while the pool runs is reported once, with what ended it — the kill of
// a stuck execution at its deadline, a crash — and a pool's own Close reports none.
func TestWorkerExitsAreReported(t *testing.T) {
	t.Parallel()
	exits := make(chan WorkerExit, 16)
	p := newFakePool(t, Options{OnWorkerExit: func(e WorkerExit) { exits <- e }})
	next := func() WorkerExit {
		t.Helper()
		select {
		case e := <-exits:
			return e
		case <-time.After(20 * time.Second):
			t.Fatal("no worker exit reported")
			return WorkerExit{}
		}
	}

	_, _ = hostile(t, p, jsvm.Call{Element: "x", Function: "spin", Limits: jsvm.Limits{Timeout: 200 * time.Millisecond}})
	e := next()
	require.True(t, e.Killed, "%+v", e)
	require.Equal(t, jsvm.CodeTimeout, e.Code)
	require.Contains(t, e.Reason, "deadline")
	require.NotZero(t, e.PID)

	_, _ = hostile(t, p, jsvm.Call{Element: "x", Function: "panic"})
	e = next()
	require.False(t, e.Killed, "a crash is no kill: %+v", e)
	require.Equal(t, jsvm.CodeJSError, e.Code)
	require.Contains(t, e.Reason, "crashed")

	require.NoError(t, p.Close())
	select {
	case e := <-exits:
		t.Fatalf("Close reported a worker exit: %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

// A worker is given a second execution queued behind its running one (queueDepth); one queued
// behind an execution that runs on is withdrawn and run by the next free worker, so trivial
// calls never wait for a long or hostile one, and a queued call whose worker is killed for the
// one ahead of it runs elsewhere.
func TestQueuedCallsDoNotWaitForALongExecution(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	host := jsvm.HostCallerFunc(func(ctx context.Context, call jsvm.HostCall) (any, error) {
		entered <- struct{}{}
		<-release
		return nil, nil
	})
	p := newFakePool(t, Options{Workers: 2, Spares: -1, Host: host})
	long := make(chan error, 1)
	go func() {
		_, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "wait"})
		long <- err
	}()
	<-entered
	// Four callers at once keep the other worker busy, so calls queue behind the long one too.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := p.Execute(ctx, jsvm.Call{Element: "x", Function: "echo", Args: []any{"ping"}})
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "a trivial call waited behind the long one")
	}
	close(release)
	require.NoError(t, <-long)

	// A call queued behind one that is killed at its deadline runs on the replacement.
	p = newFakePool(t, Options{Workers: 1, Spares: 1, Limits: jsvm.Limits{Timeout: 200 * time.Millisecond}})
	stuck := make(chan error, 1)
	go func() {
		_, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "spin"})
		stuck <- err
	}()
	time.Sleep(20 * time.Millisecond)
	echo(t, p)
	requireCode(t, <-stuck, jsvm.CodeTimeout)
	echo(t, p)
}
