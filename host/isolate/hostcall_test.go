package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// serveOne runs serveHostCall for one call of an execution with ctx and returns the reply the
// worker would get.
func serveOne(t *testing.T, host jsvm.HostCaller, ctx context.Context, deadline time.Time) *frame {
	t.Helper()
	r, wr := io.Pipe()
	w := &proc{pool: &Pool{opts: Options{Host: host}}, c: newConn(strings.NewReader(""), wr)}
	ex := &execution{id: 7, ctx: ctx, deadline: deadline}
	go w.serveHostCall(ex, &frame{Kind: kindHostCall, ID: 3, Version: 7, HostCall: &jsvm.HostCall{FullName: "services.H", Method: "m"}})
	f, err := newConn(r, io.Discard).recv()
	require.NoError(t, err)
	require.Equal(t, kindHostReply, f.Kind)
	require.Equal(t, uint64(3), f.ID)
	return f
}

// A host call answered after its execution's ctx ended says so (Ended) and carries the ctx's
// code, coded, whatever the host answered; a call made after it ended does not reach the host.
func TestHostReplyOfAnEndedExecution(t *testing.T) {
	t.Parallel()
	far := time.Now().Add(time.Hour)
	returnsCtxErr := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})

	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	f := serveOne(t, returnsCtxErr, ctx, far)
	require.Equal(t, jsvm.CodeCanceled, f.Ended)
	require.NotNil(t, f.Err)
	require.True(t, f.Err.Coded)
	require.Equal(t, jsvm.CodeCanceled, f.Err.Code)

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	dl, _ := ctx.Deadline()
	f = serveOne(t, returnsCtxErr, ctx, dl)
	require.Equal(t, jsvm.CodeTimeout, f.Ended)
	require.True(t, f.Err.Coded)
	require.Equal(t, jsvm.CodeTimeout, f.Err.Code)

	// A host that ignores its ctx and answers a value: the reply still says the execution ended.
	ignores := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		<-ctx.Done()
		return "late", nil
	})
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	f = serveOne(t, ignores, ctx, far)
	require.Equal(t, jsvm.CodeCanceled, f.Ended)
	require.Nil(t, f.Err)
	require.Equal(t, "late", f.Value)

	// Past its deadline, even before the ctx's timer has fired, an execution calls no host.
	called := false
	counts := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		called = true
		return nil, nil
	})
	f = serveOne(t, counts, context.Background(), time.Now().Add(-time.Millisecond))
	require.False(t, called, "the host was called for an execution past its deadline")
	require.Equal(t, jsvm.CodeTimeout, f.Ended)
	require.Equal(t, jsvm.CodeTimeout, f.Err.Code)

	// A live execution's reply says nothing of the kind.
	f = serveOne(t, counts, context.Background(), far)
	require.True(t, called)
	require.Empty(t, f.Ended)
	require.Nil(t, f.Err)
}

// A host panic is answered as a panic, with its value and where it happened, for the worker to
// re-raise in its VM.
func TestHostPanicReply(t *testing.T) {
	t.Parallel()
	f := serveOne(t, jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		panic("host bug")
	}), context.Background(), time.Now().Add(time.Hour))
	require.NotNil(t, f.Err)
	require.True(t, f.Err.Panic)
	require.Equal(t, "host bug", f.Err.Message)
	require.Contains(t, f.Err.Details["goStack"], "hostcall_test.go")
	require.Empty(t, f.Ended)
}

type detailed struct {
	code    string
	details any
}

func (d detailed) Error() string     { return "detailed " + d.code }
func (d detailed) ErrorCode() string { return d.code }
func (d detailed) ErrorDetails() any { return d.details }

type plainDetailed struct{ details any }

func (p plainDetailed) Error() string     { return "plain" }
func (p plainDetailed) ErrorDetails() any { return p.details }

// toWireError carries what the VM would throw in-process: the code, the message and the details
// a host error gives with ErrorDetails() any when they are a map[string]any, normalized to the
// value model, through wrapping; a *jsvm.Error's own Details otherwise.
func TestToWireErrorKeepsDetails(t *testing.T) {
	t.Parallel()
	type row struct {
		ID int `json:"id"`
	}
	we := toWireError(fmt.Errorf("wrapped: %w", detailed{"invalid_argument", map[string]any{"field": "userId", "row": row{ID: 2}}}))
	require.True(t, we.Coded)
	require.Equal(t, "invalid_argument", we.Code)
	require.Equal(t, "wrapped: detailed invalid_argument", we.Message)
	require.Equal(t, map[string]any{"field": "userId", "row": map[string]any{"id": int64(2)}}, we.Details)

	we = toWireError(plainDetailed{map[string]any{"disk": "sda"}})
	require.False(t, we.Coded)
	require.Equal(t, "plain", we.Message)
	require.Equal(t, map[string]any{"disk": "sda"}, we.Details)

	we = toWireError(detailed{"conflict", []string{"not a map"}})
	require.Equal(t, "conflict", we.Code)
	require.Nil(t, we.Details)

	we = toWireError(&jsvm.Error{Code: "not_found", Message: "no row", Details: map[string]any{"id": int64(7)}})
	require.Equal(t, jsvm.Error{Code: "not_found", Message: "no row", Details: map[string]any{"id": int64(7)}}, we.Error)

	we = toWireError(errors.New("disk on fire"))
	require.False(t, we.Coded)
	require.Nil(t, we.Details)
}
