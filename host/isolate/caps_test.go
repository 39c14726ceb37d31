package isolate

import (
	"bytes"
	"context"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// nested returns v wrapped in depth arrays.
func nested(v any, depth int) any {
	for range depth {
		v = []any{v}
	}
	return v
}

// allocated runs f and returns how many bytes the process allocated meanwhile (TotalAlloc: what
// a quadratic encoder costs shows here even when the garbage is gone by the time f returns).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// liveHeap is the live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Issue 12, case 5: a 17 KiB request nested 9,000 deep cost the host 914 MiB, spent encoding
// the exec frame (the worker refused the value only after). The host now refuses it before the
// frame is made, at the nesting cap, and its memory does not move. Not parallel: it measures the
// process's allocations.
func TestDeepArgumentsAreRefusedBeforeTheFrame(t *testing.T) {
	p := newFakePool(t, Options{Workers: 1})
	echo(t, p)
	deep := nested("x", 9000)
	base := liveHeap()
	var err error
	alloc := allocated(func() {
		_, err = p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo", Args: []any{deep}})
	})
	je := requireCode(t, err, jsvm.CodeInvalidArg)
	require.Contains(t, je.Message, "--max-depth")
	require.Less(t, alloc, uint64(16<<20), "the host allocated %d MiB for a refused call", alloc>>20)
	require.Less(t, int64(liveHeap())-int64(base), int64(16<<20))

	// Within the cap (64 by default; a call's own applies) the value crosses whole.
	res, err := p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo", Args: []any{nested("x", 60)}})
	require.NoError(t, err)
	require.Equal(t, []any{nested("x", 60)}, res.Value.(map[string]any)["args"])
	_, err = p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "echo", Args: []any{nested("x", 20)}, Limits: jsvm.Limits{MaxValueDepth: 10}})
	requireCode(t, err, jsvm.CodeInvalidArg)
	echo(t, p)
}

// Values cross in an encoding linear in their size: a 4 MiB string 64 levels down took gob
// 244 MiB to encode.
func TestWireValuesAreLinear(t *testing.T) {
	big := nested(strings.Repeat("x", 4<<20), 64)
	var b []byte
	alloc := allocated(func() {
		var err error
		b, err = wireValues{big}.GobEncode()
		require.NoError(t, err)
	})
	require.Less(t, alloc, uint64(24<<20), "encoding 4 MiB allocated %d MiB", alloc>>20)
	var back wireValues
	require.NoError(t, back.GobDecode(b))
	require.Equal(t, wireValues{big}, back)
}

func TestWireValuesKeepEveryKind(t *testing.T) {
	t.Parallel()
	when := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("", 3600))
	in := wireValues{nil, true, false, int64(math.MinInt64), 7, math.Inf(1), -0.5, "é\x00", when,
		[]any{}, map[string]any{}, []any{[]any{}, map[string]any{"": nil, "k": []any{int64(1)}}}}
	b, err := in.GobEncode()
	require.NoError(t, err)
	var out wireValues
	require.NoError(t, out.GobDecode(b))
	require.Equal(t, in, out)
	require.NotNil(t, out[9], "an empty array stays an array")
	nan, err := wireValues{math.NaN()}.GobEncode()
	require.NoError(t, err)
	require.NoError(t, out.GobDecode(nan))
	require.True(t, math.IsNaN(out[0].(float64)))

	_, err = wireValues{struct{}{}}.GobEncode()
	require.ErrorIs(t, err, ErrProtocol, "values are normalized before they are sent")
}

// A broken frame is refused without allocating more than its own size.
func TestBrokenWireValuesAreRefused(t *testing.T) {
	t.Parallel()
	good, err := wireValues{"abc", []any{int64(1)}}.GobEncode()
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"empty":              {},
		"truncated":          good[:len(good)-2],
		"trailing bytes":     append(append([]byte{}, good...), 0),
		"unknown tag":        {tagArray, 1, 99},
		"length past end":    {tagArray, 1, tagString, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge array claimed": {tagArray, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"not a list":         {tagString, 1, 'x'},
		"nested too deep":    append(append([]byte{tagArray, 1}, []byte(strings.Repeat(string([]byte{tagArray, 1}), maxWireDepth+1))...), tagNil),
	} {
		var out wireValues
		require.ErrorIs(t, out.GobDecode(b), ErrProtocol, name)
	}
}

// A frame's values go out of their structs into Values and come back, and the caller's frame is
// left as it was.
func TestFramePackKeepsTheCallersValues(t *testing.T) {
	t.Parallel()
	call := &jsvm.Call{Element: "x", Args: []any{int64(1)}, Ctx: &jsvm.HandlerContext{Extra: map[string]any{"a": "b"}}}
	f := &frame{Kind: kindExec, Call: call, Err: &wireError{Error: jsvm.Error{Details: map[string]any{"code": "c"}}}, Value: "v"}
	packed := f.pack()
	require.Nil(t, packed.Call.Args)
	require.Equal(t, []any{int64(1)}, call.Args, "the caller's call is not changed")
	require.Equal(t, "b", call.Ctx.Extra["a"])
	require.NoError(t, packed.unpack())
	require.Equal(t, call.Args, packed.Call.Args)
	require.Equal(t, call.Ctx.Extra, packed.Call.Ctx.Extra)
	require.Equal(t, "c", packed.Err.Details["code"])
	require.Equal(t, "v", packed.Value)
	require.Nil(t, packed.Result)
}

// The supervisor reads no frame larger than its bound (Pool.maxFrame), whatever a worker sends:
// it kills the worker before gob allocates the frame.
func TestFrameLargerThanTheBoundKillsTheWorker(t *testing.T) {
	// A memory cap roomy enough that the RSS safeguard lets the worker make its 96 MiB frame.
	p := newFakePool(t, Options{Workers: 1, Limits: jsvm.Limits{MemoryBytes: 512 << 20}})
	echo(t, p)
	base := liveHeap()
	var err error
	alloc := allocated(func() {
		_, err = p.Execute(context.Background(), jsvm.Call{Element: "x", Function: "hugelogs"})
	})
	je := requireCode(t, err, jsvm.CodeMemoryLimit)
	require.Contains(t, je.Message, "larger than the host accepts")
	require.Less(t, alloc, uint64(16<<20), "the host read %d MiB of a 96 MiB frame", alloc>>20)
	require.Less(t, int64(liveHeap())-int64(base), int64(16<<20))
	echo(t, p)
}

func TestFrameLimiterReadsEveryLengthForm(t *testing.T) {
	t.Parallel()
	var stream bytes.Buffer
	c := newConn(strings.NewReader(""), &stream)
	for _, v := range []any{"small", strings.Repeat("m", 300), strings.Repeat("b", 70000)} {
		require.NoError(t, c.send(&frame{Kind: kindHostReply, Value: v}))
	}
	// One byte at a time, so every length prefix is split across reads.
	r := newLimitedConn(iotest.OneByteReader(bytes.NewReader(stream.Bytes())), io.Discard, 1000)
	for _, want := range []string{"small", strings.Repeat("m", 300)} {
		f, err := r.recv()
		require.NoError(t, err)
		require.Equal(t, want, f.Value)
	}
	_, err := r.recv()
	require.ErrorIs(t, err, errFrameTooLarge)
	_, err = r.recv()
	require.ErrorIs(t, err, errFrameTooLarge, "and every read after it")

	r = newLimitedConn(bytes.NewReader(stream.Bytes()), io.Discard, 1<<20)
	for range 3 {
		_, err := r.recv()
		require.NoError(t, err)
	}
}
