package jsvmtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// Load of a new Source makes every new call see it: changed code, commons, app name and env,
// added elements; dropped elements are not_found.
func testReload(e *env) {
	v1 := app(
		js("services.V", `const c = require("commons/c"); exports.v = () => ["v1", c.x, app.name, app.env("REGION")]`),
		js("services.Gone", `exports.f = () => "still here"`),
	)
	v1.Commons = map[string]string{"commons/c.js": `exports.x = "c1"`}
	ex := e.open(nil, v1)
	require.Equal(e.t, []any{"v1", "c1", "testapp", "eu"}, e.value("services.V", "v"))
	require.Equal(e.t, "still here", e.value("services.Gone", "f"))

	v2 := app(
		jsFiles("services.V", map[string]string{
			"index.js": `const c = require("commons/c"); exports.v = () => [require("./lib/n").n, c.x, app.name, app.env("REGION")]`,
			"lib/n.js": `exports.n = "v2"`,
		}),
		js("services.New", `exports.f = () => "new"`),
	)
	v2.AppName, v2.Env = "testapp2", map[string]string{"REGION": "us"}
	v2.Commons = map[string]string{"commons/c.js": `exports.x = "c2"`}
	require.NoError(e.t, ex.Load(v2))
	for i := range 8 { // several calls, so that every runtime or worker is asked
		require.Equal(e.t, []any{"v2", "c2", "testapp2", "us"}, e.value("services.V", "v"), "call %d after the reload", i)
		require.Equal(e.t, jsvm.CodeNotFound, e.fail("services.Gone", "f").Code, "call %d: a dropped element", i)
		require.Equal(e.t, "new", e.value("services.New", "f"), "call %d: an added element", i)
	}

	v3 := app(
		jsFiles("services.V", map[string]string{
			"index.js": v2.Elements["services.V"].Files["index.js"],
			"lib/n.js": `exports.n = "v3"`,
		}),
		v2.Elements["services.New"],
	)
	v3.AppName, v3.Env, v3.Commons = v2.AppName, v2.Env, v2.Commons
	require.NoError(e.t, ex.Load(v3))
	for i := range 8 {
		require.Equal(e.t, []any{"v3", "c2", "testapp2", "us"}, e.value("services.V", "v"), "call %d: a change in a required file only", i)
	}
}

// An execution running during a Load finishes on the version it started with, while new ones
// already see the new version.
func testReloadWhileRunning(e *env) {
	g := newGate()
	gateEl := hostElement("services.Gate", "wait")
	ex := e.open(g, app(gateEl,
		js("services.V", `exports.f = () => { app.getElement("services.Gate").wait(); return "v1" }; exports.now = () => "v1"`)))
	done := make(chan any, 1)
	go func() {
		res, err := ex.Execute(context.Background(), jsvm.Call{Element: "services.V", Function: "f", Args: []any{}})
		if err != nil {
			done <- err
			return
		}
		done <- res.Value
	}()
	e.waitEntered(g)
	require.NoError(e.t, ex.Load(app(gateEl, js("services.V", `exports.f = () => "v2"; exports.now = () => "v2"`))))
	for range 4 {
		require.Equal(e.t, "v2", e.value("services.V", "now"), "a new execution during the old one")
	}
	g.open()
	select {
	case got := <-done:
		require.Equal(e.t, "v1", got, "the running execution finishes on the version it started with")
	case <-time.After(e.f.Timeout):
		e.t.Fatalf("the held execution did not finish within %s", e.f.Timeout)
	}
	for range 4 {
		require.Equal(e.t, "v2", e.value("services.V", "f"))
	}
}

// Execute before any Load fails with code unavailable; Load then makes it work.
func testExecuteBeforeLoad(e *env) {
	ex := e.open(nil, nil)
	_, err := ex.Execute(context.Background(), jsvm.Call{Element: "services.A", Function: "f", Args: []any{}})
	require.Equal(e.t, jsvm.CodeUnavailable, e.asError(err, "Execute before Load").Code)
	require.NoError(e.t, ex.Load(app(js("services.A", `exports.f = () => 1`))))
	require.Equal(e.t, int64(1), e.value("services.A", "f"))
}

// After Close, Execute and Load fail with jsvm.ErrClosed (or code unavailable); Close is safe
// twice. An execution running at Close either ends with an error (CloseEndsRunning) or
// runs to its end.
func testClose(e *env) {
	g := newGate()
	ex := e.open(g, app(hostElement("services.Gate", "wait"),
		js("services.A", `exports.f = () => 1; exports.held = () => { app.getElement("services.Gate").wait(); return "finished" }`)))
	require.Equal(e.t, int64(1), e.value("services.A", "f"))
	type out struct {
		v   any
		err error
	}
	running := make(chan out, 1)
	go func() {
		res, err := ex.Execute(context.Background(), jsvm.Call{Element: "services.A", Function: "held", Args: []any{}})
		running <- out{res.Value, err}
	}()
	e.waitEntered(g)

	closed := make(chan error, 1)
	go func() { closed <- ex.Close() }()
	if !e.f.CloseEndsRunning {
		// Close may wait for the running execution; let it finish.
		time.Sleep(20 * time.Millisecond)
		g.open()
	}
	select {
	case err := <-closed:
		require.NoError(e.t, err)
	case <-time.After(e.f.Timeout):
		e.t.Fatalf("Close did not return within %s", e.f.Timeout)
	}
	require.NoError(e.t, ex.Close(), "Close twice")

	_, err := ex.Execute(context.Background(), jsvm.Call{Element: "services.A", Function: "f", Args: []any{}})
	require.Error(e.t, err, "Execute after Close")
	var je *jsvm.Error
	require.True(e.t, errors.Is(err, jsvm.ErrClosed) || errors.As(err, &je) && je.Code == jsvm.CodeUnavailable,
		"Execute after Close: want jsvm.ErrClosed or code unavailable, got %T: %v", err, err)
	err = ex.Load(app(js("services.A", `exports.f = () => 2`)))
	require.True(e.t, errors.Is(err, jsvm.ErrClosed) || errors.As(err, &je) && je.Code == jsvm.CodeUnavailable,
		"Load after Close: want jsvm.ErrClosed or code unavailable, got %T: %v", err, err)

	var o out
	select {
	case o = <-running:
	case <-time.After(e.f.Timeout):
		e.t.Fatalf("the execution running at Close did not end within %s", e.f.Timeout)
	}
	g.open()
	if e.f.CloseEndsRunning {
		require.Error(e.t, o.err, "an execution running at Close ends")
	} else {
		require.NoError(e.t, o.err, "an execution running at Close runs to its end")
		require.Equal(e.t, "finished", o.v)
	}
}

// Many goroutines call many elements at once, each element calling the next and the host;
// every call gets its own answer, and each element sees only its own prototype changes.
func testConcurrentExecutions(e *env) {
	const elements, goroutines, calls = 6, 8, 25
	host := &recordingHost{}
	els := []*jsvm.Element{hostElement("services.H", "get")}
	for i := range elements {
		els = append(els, js(fmt.Sprintf("services.E%d", i), fmt.Sprintf(`
			let calls = 0;
			Object.prototype.owner = %d;
			exports.f = function (n, s) {
				calls++;
				const next = app.getElement("services.E%d").id();
				app.getElement("services.H").get(n);
				return {me: %d, owner: ({}).owner, next, n, s};
			};
			exports.id = () => [%d, ({}).owner];`, i, (i+1)%elements, i, i)))
	}
	e.open(host, app(els...))
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range calls {
				i := (g + c) % elements
				s := fmt.Sprintf("g%d-c%d", g, c)
				res, err := e.ex.Execute(context.Background(), jsvm.Call{Element: fmt.Sprintf("services.E%d", i), Function: "f", Args: []any{c, s}})
				if err != nil {
					errs <- err
					return
				}
				want := map[string]any{"me": int64(i), "owner": int64(i), "next": []any{int64((i + 1) % elements), int64((i + 1) % elements)}, "n": int64(c), "s": s}
				if fmt.Sprint(res.Value) != fmt.Sprint(want) {
					errs <- fmt.Errorf("element %d call %d: got %v, want %v", i, c, res.Value, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(e.t, err)
	}
	require.Len(e.t, host.recorded(), goroutines*calls)
}

// Loads while executions run: no execution fails, each caller sees versions in order, and
// a call right after a Load sees that version.
func testConcurrentLoadAndExecute(e *env) {
	version := func(i int) *jsvm.Source {
		return app(js("services.V", fmt.Sprintf(`exports.v = () => %d`, i)))
	}
	ex := e.open(nil, version(0))
	const loads = 12
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(-1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := ex.Execute(context.Background(), jsvm.Call{Element: "services.V", Function: "v", Args: []any{}})
				if err != nil {
					errs <- err
					return
				}
				v, _ := res.Value.(int64)
				if v < last {
					errs <- fmt.Errorf("saw version %d after version %d", v, last)
					return
				}
				last = v
			}
		}()
	}
	for i := 1; i <= loads; i++ {
		require.NoError(e.t, ex.Load(version(i)))
		require.Equal(e.t, int64(i), e.value("services.V", "v"), "right after Load %d", i)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(e.t, err)
	}
}
