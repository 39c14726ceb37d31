package signals_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/elements"
	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/bus/localbus"
	"github.com/trellis-run/trellis/host/bus/redisbus"
	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/lifecycle"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/signals"
	"github.com/trellis-run/trellis/logstore"
)

// probe is the host element receivers call to say what they got: services.Probe.hit(text).
const probe = "services.Probe"

type hits struct {
	mu   sync.Mutex
	list []string
}

func (h *hits) CallHost(_ context.Context, call jsvm.HostCall) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.list = append(h.list, fmt.Sprint(call.Args...))
	return nil, nil
}

func (h *hits) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.list...)
}

// loadApp writes files to a temp dir and loads it as the host does, with the receiver check.
func loadApp(t testing.TB, files map[string]string) *registry.Snapshot {
	t.Helper()
	snap, err := registry.Load(registryOptions(writeApp(t, files)))
	require.NoError(t, err)
	return snap
}

func registryOptions(dir string) registry.Options {
	return registry.Options{AppDir: dir, Builtins: elements.FS, Validators: map[string]func(*registry.Snapshot, *registry.Element) []registry.Problem{
		signals.MetaSignals: signals.ValidateReceiver,
	}}
}

func writeApp(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for path, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(path))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return dir
}

// newVM runs the app's receivers in process; the probe records their calls.
func newVM(t testing.TB, snap *registry.Snapshot, h *hits) jsvm.Executor {
	t.Helper()
	vm, err := jsvm.New(jsvm.Options{Host: h})
	require.NoError(t, err)
	t.Cleanup(func() { _ = vm.Close() })
	src := &jsvm.Source{AppName: snap.App.Name, Elements: map[string]*jsvm.Element{
		probe: {FullName: probe, Kind: jsvm.KindHost, Methods: []string{"hit"}},
	}}
	for name, el := range snap.Elements {
		if el.Layer != registry.LayerInstance || el.Files[el.Entry] == "" {
			continue
		}
		files := map[string]string{}
		for f, text := range el.Files {
			if strings.HasSuffix(f, ".js") {
				files[f] = text
			}
		}
		src.Elements[name] = &jsvm.Element{FullName: name, Kind: jsvm.KindJS, Dir: el.Dir, Entry: el.Entry, Files: files, Definition: el.Definition}
	}
	require.NoError(t, vm.Load(src))
	return vm
}

// sink keeps the rows written.
type sink struct {
	mu   sync.Mutex
	rows []logstore.Row
}

func (s *sink) Write(_ context.Context, rows ...logstore.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, rows...)
	return nil
}
func (s *sink) Flush(context.Context) error { return nil }
func (s *sink) all() []logstore.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]logstore.Row(nil), s.rows...)
}

const receiverJS = `exports.receive = function (eventType, data) {
  app.getElement("services.Probe").hit(NAME + ":" + eventType + ":" + JSON.stringify(data, Object.keys(data).sort()));
};`

func receiver(name, def string) map[string]string {
	return map[string]string{
		"signals/" + name + "/e.json":   def,
		"signals/" + name + "/index.js": strings.ReplaceAll(receiverJS, "NAME", `"`+name+`"`),
	}
}

func app(enabled bool, parts ...map[string]string) map[string]string {
	files := map[string]string{"app.json": fmt.Sprintf(`{"name": "sig", "signals": {"enabled": %v}}`, enabled)}
	for _, p := range parts {
		for k, v := range p {
			files[k] = v
		}
	}
	return files
}

func sig(t lifecycle.Type, node string) lifecycle.Signal {
	return lifecycle.Signal{Type: t, RequestID: "req_1", NodeID: node, Element: "events.OnX",
		Data: map[string]any{"root_pipeline_id": "req_1", "node_id": node}}
}

func newCenter(t testing.TB, opts signals.Options) *signals.Center {
	t.Helper()
	c, err := signals.New(opts)
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

func TestReceiversRunInOrderFilteredByEventType(t *testing.T) {
	t.Parallel()
	snap := loadApp(t, app(true,
		receiver("All", `{"title": "All", "type": "signals.NormalType"}`),
		receiver("Finish", `{"title": "Finish", "type": "signals.NormalType", "eventTypes": ["node_finish", "pipeline_finish"]}`),
		receiver("Off", `{"title": "Off", "type": "signals.NormalType", "enabled": false}`),
	))
	h := &hits{}
	c := newCenter(t, signals.Options{Snapshot: func() *registry.Snapshot { return snap }, Executor: newVM(t, snap, h)})
	ctx := context.Background()
	c.Emit(ctx, sig(lifecycle.NodeEnter, "n1"))
	c.Emit(ctx, sig(lifecycle.NodeFinish, "n1"))
	c.Emit(ctx, lifecycle.Signal{Type: lifecycle.PipelineFinish, RequestID: "req_1", Data: map[string]any{"root_pipeline_id": "req_1", "big": int64(9007199254740993)}})
	require.Equal(t, []string{
		`All:node_enter:{"node_id":"n1","root_pipeline_id":"req_1"}`,
		`All:node_finish:{"node_id":"n1","root_pipeline_id":"req_1"}`,
		`Finish:node_finish:{"node_id":"n1","root_pipeline_id":"req_1"}`,
		// An integer past 2^53 arrives exact (a BigInt, which the sandbox's JSON writes as a string).
		`All:pipeline_finish:{"big":"9007199254740993","root_pipeline_id":"req_1"}`,
		`Finish:pipeline_finish:{"big":"9007199254740993","root_pipeline_id":"req_1"}`,
	}, h.all(), "each receiver once per signal it hears, in emission order, receivers by fullName")
}

func TestSignalsOffRunsAndPublishesNothing(t *testing.T) {
	t.Parallel()
	snap := loadApp(t, app(false, receiver("All", `{"title": "All", "type": "signals.NormalType"}`)))
	h := &hits{}
	b := openLocalBus(t)
	c := newCenter(t, signals.Options{Snapshot: func() *registry.Snapshot { return snap }, Executor: newVM(t, snap, h), Bus: b})
	require.False(t, c.Enabled())
	r, _, err := c.Hub().Reader("")
	require.NoError(t, err)
	c.Emit(context.Background(), sig(lifecycle.NodeEnter, "n1"))
	time.Sleep(100 * time.Millisecond)
	recs, _, _, _ := r.Next(10)
	require.Empty(t, recs, "nothing reaches the stream")
	require.Empty(t, h.all(), "no receiver runs")
}

func TestSlowAndThrowingReceiversAreLoggedAndTheRestRun(t *testing.T) {
	t.Parallel()
	files := app(true,
		map[string]string{
			"signals/A1Slow/e.json":    `{"title": "Slow", "type": "signals.NormalType", "timeout": "200ms"}`,
			"signals/A1Slow/index.js":  `exports.receive = function () { for (;;) {} };`,
			"signals/A2Boom/e.json":    `{"title": "Boom", "type": "signals.NormalType"}`,
			"signals/A2Boom/index.js":  `exports.receive = function (t) { throw new Error("boom on " + t); };`,
			"signals/A3Quiet/e.json":   `{"title": "Quiet", "type": "signals.NormalType", "handler": "onSignal"}`,
			"signals/A3Quiet/index.js": `exports.onSignal = function (t, d) { app.getElement("services.Probe").hit("quiet:" + t + ":" + d.node_id); return 42; };`,
		})
	snap := loadApp(t, files)
	h := &hits{}
	s := &sink{}
	c := newCenter(t, signals.Options{Snapshot: func() *registry.Snapshot { return snap }, Executor: newVM(t, snap, h),
		Log: execlog.NewRecorder(s, "m1/inst_1")})
	start := time.Now()
	c.Emit(context.Background(), sig(lifecycle.NodeExecuteFail, "n7"))
	took := time.Since(start)
	require.Less(t, took, 2*time.Second, "a slow receiver costs the announcer its timeout, not more")
	require.GreaterOrEqual(t, took, 200*time.Millisecond)
	require.Equal(t, []string{"quiet:node_execute_fail:n7"}, h.all(), "the receivers after the failing ones run")

	rows := s.all()
	require.Len(t, rows, 3, "one row per receiver call")
	byName := map[string]logstore.Row{}
	for _, r := range rows {
		byName[r.FullName] = r
		require.Equal(t, signals.KindSignal, r.Kind)
		require.Equal(t, "node_execute_fail", r.EventType)
		require.Equal(t, "req_1", r.RequestID)
		require.Equal(t, "n7", r.ParentNodeID)
		require.Equal(t, "events.OnX", r.Sender)
		require.Contains(t, string(r.Kwargs), `"event_type":"node_execute_fail"`)
	}
	require.Equal(t, "timeout", byName["signals.A1Slow"].Error.Code)
	require.Equal(t, "js_error", byName["signals.A2Boom"].Error.Code)
	require.Contains(t, byName["signals.A2Boom"].Error.Message, "boom on node_execute_fail")
	require.Equal(t, logstore.StatusFail, byName["signals.A1Slow"].Status)
	require.Equal(t, logstore.StatusFail, byName["signals.A2Boom"].Status)
	quiet := byName["signals.A3Quiet"]
	require.Equal(t, logstore.StatusSuccess, quiet.Status)
	require.Equal(t, logstore.StageDone, quiet.Stage)
	require.JSONEq(t, "42", string(quiet.Result))
}

func TestUnknownEventTypesAreProblems(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, app(true, receiver("Typo", `{"title": "Typo", "type": "signals.NormalType",
  "eventTypes": ["node_finish", "node_finsh", "pre_skip_exclusive_gateway"]}`)))
	_, err := registry.Load(registryOptions(dir))
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, `"node_finsh" is no signal Trellis emits`)
	require.Contains(t, msg, "no gateways")
	require.NotContains(t, msg, `"node_finish" is no`)
}

func TestHubResumesAfterLastEventID(t *testing.T) {
	t.Parallel()
	hub := signals.NewHub(4)
	add := func(ids ...string) {
		for _, id := range ids {
			hub.Add(signals.Record{ID: id, Signal: lifecycle.Signal{Type: lifecycle.NodeEnter}})
		}
	}
	ids := func(recs []signals.Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	r, gap, err := hub.Reader("5-0")
	require.NoError(t, err)
	require.False(t, gap, "an empty hub knows of no gap")
	add("10-0", "10-1", "11-0")
	got, lost, _, _ := r.Next(10)
	require.False(t, lost)
	require.Equal(t, []string{"10-0", "10-1", "11-0"}, ids(got))

	r, gap, err = hub.Reader("10-0")
	require.NoError(t, err)
	require.False(t, gap)
	got, _, _, _ = r.Next(10)
	require.Equal(t, []string{"10-1", "11-0"}, ids(got), "what came after the last id seen")

	r, _, _ = hub.Reader("10-5") // between two held ids
	got, _, _, _ = r.Next(10)
	require.Equal(t, []string{"11-0"}, ids(got))

	r, _, _ = hub.Reader("99-0")
	got, _, _, _ = r.Next(10)
	require.Empty(t, got, "nothing newer than the last id")

	add("12-0", "13-0") // the ring holds 4: 10-0 falls off
	r, gap, _ = hub.Reader("9-0")
	require.True(t, gap, "older than the oldest held")
	got, _, _, _ = r.Next(10)
	require.Equal(t, []string{"10-1", "11-0", "12-0", "13-0"}, ids(got))

	slow, _, _ := hub.Reader("")
	add("14-0", "15-0", "16-0", "17-0", "18-0")
	got, lost, _, _ = slow.Next(10)
	require.True(t, lost, "a reader the ring overtook is told")
	require.Equal(t, []string{"15-0", "16-0", "17-0", "18-0"}, ids(got))

	_, _, err = hub.Reader("not-an-id")
	require.ErrorIs(t, err, signals.ErrBadID)
	r, _, _ = hub.Reader("17") // the embedded bus's ids are plain sequences
	got, _, _, _ = r.Next(10)
	require.Equal(t, []string{"18-0"}, ids(got))

	_, _, wake, done := r.Next(1)
	select {
	case <-wake:
		t.Fatal("woken with nothing new")
	default:
	}
	add("19-0")
	<-wake
	hub.Close()
	<-done
}

func openLocalBus(t testing.TB) bus.Bus {
	t.Helper()
	b, err := localbus.Open(t.TempDir(), localbus.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func openRedisBus(t testing.TB, prefix string) bus.Bus {
	t.Helper()
	url := os.Getenv("TRELLIS_TEST_REDIS")
	if url == "" {
		t.Skip(`TRELLIS_TEST_REDIS is not set: run eval "$(scripts/services.sh start)" first`)
	}
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	b, err := redisbus.New(redisbus.Options{Redis: opts, Prefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// await reads r until it has n records.
func await(t testing.TB, r *signals.Reader, n int) []signals.Record {
	t.Helper()
	var out []signals.Record
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		recs, _, wake, _ := r.Next(n - len(out))
		out = append(out, recs...)
		if len(out) >= n {
			break
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("got %d of %d signals", len(out), n)
		}
	}
	return out
}

func TestSignalsReachTheHubThroughTheEmbeddedBus(t *testing.T) {
	t.Parallel()
	snap := loadApp(t, app(true))
	b := openLocalBus(t)
	c := newCenter(t, signals.Options{Snapshot: func() *registry.Snapshot { return snap }, Bus: b,
		Log: execlog.NewRecorder(&sink{}, "m1/inst_1")})
	r, _, err := c.Hub().Reader("")
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		c.Emit(context.Background(), sig(lifecycle.NodeEnter, fmt.Sprint("n", i)))
	}
	recs := await(t, r, 5)
	for i, rec := range recs {
		require.Equal(t, fmt.Sprint("n", i), rec.NodeID, "in emission order")
		require.Equal(t, fmt.Sprint("n", i), rec.Data["node_id"])
		require.NotEmpty(t, rec.ID)
		require.Equal(t, "m1/inst_1", rec.Host)
		require.False(t, rec.At.IsZero())
	}
}

func TestStaleHostGroupsAreSweptOnTheEmbeddedBus(t *testing.T) {
	t.Parallel()
	snap := loadApp(t, app(true))
	b := openLocalBus(t)
	ctx := context.Background()
	old, err := b.Subscribe(ctx, signals.Topic, signals.GroupPrefix+"inst_gone", bus.SubscribeOptions{Consumer: "inst_gone", Start: bus.StartNewest})
	require.NoError(t, err)
	require.NoError(t, old.Close())
	outside, err := b.Subscribe(ctx, signals.Topic, "audit-exporter", bus.SubscribeOptions{Consumer: "x", Start: bus.StartNewest})
	require.NoError(t, err)
	require.NoError(t, outside.Close())
	c := newCenter(t, signals.Options{Snapshot: func() *registry.Snapshot { return snap }, Bus: b, InstanceID: "inst_me"})
	lags, err := b.Lag(ctx, signals.Topic)
	require.NoError(t, err)
	var groups []string
	for _, g := range lags {
		groups = append(groups, g.Group)
	}
	require.ElementsMatch(t, []string{"host:inst_me", "audit-exporter"}, groups, "the gone host's group is deleted, an outside group kept")
	require.NoError(t, c.Stop(ctx))
	lags, err = b.Lag(ctx, signals.Topic)
	require.NoError(t, err)
	require.Len(t, lags, 1, "a host deletes its own group when it stops")
}

func TestTwoHostsOnRedisSeeEachOthersSignals(t *testing.T) {
	t.Parallel()
	prefix := fmt.Sprintf("trellis:sigtest%d:", time.Now().UnixNano())
	snap := loadApp(t, app(true))
	var centers []*signals.Center
	var readers []*signals.Reader
	for i := 0; i < 2; i++ {
		b := openRedisBus(t, prefix)
		c := newCenter(t, signals.Options{Snapshot: func() *registry.Snapshot { return snap }, Bus: b,
			Log: execlog.NewRecorder(&sink{}, fmt.Sprintf("m%d/inst_%d", i, i))})
		r, _, err := c.Hub().Reader("")
		require.NoError(t, err)
		centers, readers = append(centers, c), append(readers, r)
	}
	ctx := context.Background()
	centers[0].Emit(ctx, sig(lifecycle.NodeEnter, "a"))
	centers[1].Emit(ctx, sig(lifecycle.NodeEnter, "b"))
	for _, r := range readers {
		recs := await(t, r, 2)
		got := map[string]string{}
		for _, rec := range recs {
			got[rec.NodeID] = rec.Host
			require.Regexp(t, `^\d+-\d+$`, rec.ID, "a Redis stream id")
		}
		require.Equal(t, map[string]string{"a": "m0/inst_0", "b": "m1/inst_1"}, got, "each host sees both hosts' signals")
	}
	// Both hosts hold the same ids in the same order: a client may resume on either.
	a, _, _ := centers[0].Hub().Reader("0-0")
	b, _, _ := centers[1].Hub().Reader("0-0")
	ra, rb := await(t, a, 2), await(t, b, 2)
	require.Equal(t, ra[0].ID, rb[0].ID)
	require.Equal(t, ra[1].ID, rb[1].ID)
}

// Without a bus (one host, embedded storage) signals reach the hub at once, with ids of the
// Redis form (ms-seq) made by the center, increasing; a client resuming with an id from before
// (the embedded bus's plain sequence numbers, or an earlier run) is told signals may be missing.
// A receiver still gets the signal's data as JSON carries it.
func TestWithoutABusSignalsGetIncreasingIDsOfTheRedisForm(t *testing.T) {
	t.Parallel()
	snap := loadApp(t, app(true, receiver("All", `{"title": "All", "type": "signals.NormalType"}`)))
	h := &hits{}
	c := newCenter(t, signals.Options{Snapshot: func() *registry.Snapshot { return snap }, Executor: newVM(t, snap, h)})
	for i := range 50 {
		c.Emit(context.Background(), sig(lifecycle.NodeEnter, fmt.Sprintf("n%d", i)))
	}
	r, gap, err := c.Hub().Reader("42")
	require.NoError(t, err)
	require.True(t, gap, "an id older than every held one")
	recs, _, _, _ := r.Next(100)
	require.Len(t, recs, 50)
	prev := ""
	for _, rec := range recs {
		ms, seq, ok := strings.Cut(rec.ID, "-")
		require.True(t, ok, "id %q is ms-seq", rec.ID)
		require.NotEmpty(t, ms)
		require.NotEmpty(t, seq)
		if prev != "" {
			r2, _, err := c.Hub().Reader(prev)
			require.NoError(t, err)
			next, _, _, _ := r2.Next(1)
			require.Equal(t, rec.ID, next[0].ID, "resuming after %s gives the next one", prev)
		}
		prev = rec.ID
	}
	require.Len(t, h.all(), 50)
	require.Contains(t, h.all()[0], `"node_id":"n0"`)
}
