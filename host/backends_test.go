package host_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/models"
)

// countingBus is a bus the test passes in: the host must use it, and close it.
type countingBus struct {
	bus.Bus
	published atomic.Int64
	closed    atomic.Bool
}

func (b *countingBus) Publish(ctx context.Context, topic string, msgs ...*bus.Message) ([]string, error) {
	b.published.Add(int64(len(msgs)))
	return b.Bus.Publish(ctx, topic, msgs...)
}

func (b *countingBus) Close() error {
	b.closed.Store(true)
	return b.Bus.Close()
}

// refusingModels is a model store whose tables cannot be brought up to date.
type refusingModels struct{ models.Store }

func (refusingModels) Ensure(context.Context, models.Schema) error {
	return errors.New("disk full")
}

// The host runs on whatever backends it is given, and a part that fails to start stops those
// before it and releases the backends, so the next Start opens them afresh.
func TestHostRunsOnTheBackendsItIsGiven(t *testing.T) {
	t.Parallel()
	var (
		opened  atomic.Int64
		failing atomic.Bool
		last    atomic.Pointer[countingBus]
	)
	failing.Store(true)
	open := func(ctx context.Context, cfg host.Config, app string) (*host.Backends, error) {
		b, err := backends.Open(ctx, cfg, app)
		if err != nil {
			return nil, err
		}
		opened.Add(1)
		cb := &countingBus{Bus: b.Bus}
		b.Bus = cb
		last.Store(cb)
		if failing.Load() {
			b.Models = refusingModels{b.Models}
		}
		return b, nil
	}
	files := map[string]string{"models/Note/e.json": `{"title": "Note", "type": "models.NormalType", "fields": [{"name": "text", "type": "Stext"}]}`}
	for k, v := range eventApp {
		files[k] = v
	}
	h, err := host.New(host.Config{AppDir: writeApp(t, files), Sandbox: host.SandboxInProcess, ServeEvents: true}, open)
	require.NoError(t, err)
	ctx := context.Background()

	err = h.Start(ctx)
	require.ErrorContains(t, err, "host: start model storage")
	require.ErrorContains(t, err, "disk full")
	require.True(t, last.Load().closed.Load(), "the backends are closed when a later part fails")
	_, err = h.SendEvent(ctx, engine.SendRequest{Sender: "services.Orders", Kwargs: map[string]any{}})
	require.ErrorIs(t, err, host.ErrNotStarted, "nothing half-started answers")

	failing.Store(false)
	require.NoError(t, h.Start(ctx), "the embedded bus and stores were released, so they open again")
	t.Cleanup(func() { _ = h.Stop(ctx) })
	require.EqualValues(t, 2, opened.Load())
	res, err := h.SendEvent(ctx, engine.SendRequest{Sender: "services.Orders", Kwargs: map[string]any{"orderId": 1}})
	require.NoError(t, err)
	require.NotEmpty(t, res.NodeIDs)
	require.Positive(t, last.Load().published.Load(), "events go through the bus the host was given")

	require.NoError(t, h.Stop(ctx))
	require.True(t, last.Load().closed.Load())
	require.NoError(t, h.Stop(ctx), "Stop twice is fine")
}

func TestOpenBackendsFailureIsNamed(t *testing.T) {
	t.Parallel()
	open := func(context.Context, host.Config, string) (*host.Backends, error) {
		return nil, errors.New("redis: connection refused")
	}
	h, err := host.New(host.Config{AppDir: writeApp(t, eventApp), Sandbox: host.SandboxInProcess}, open)
	require.NoError(t, err)
	require.EqualError(t, h.Start(context.Background()), "host: start backends: redis: connection refused")
	_, err = host.New(host.Config{AppDir: writeApp(t, eventApp)}, nil)
	require.ErrorIs(t, err, host.ErrInvalidConfig)
}
