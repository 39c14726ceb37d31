package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// genApp writes an app of n elements shaped like a real one: 40% services, 30% event
// listeners, 20% cron tasks calling services, 10% models, each service and listener with a
// few dozen lines of code requiring a commons module.
func genApp(tb testing.TB, n int) string {
	tb.Helper()
	files := map[string]string{"commons/util.js": "exports.fmt = function (x) { return String(x) }\n"}
	body := strings.Repeat("  if (args && args.n > 1) { total += args.n * 2 } else { total -= 1 }\n", 20)
	for i := 0; i < n; i++ {
		switch i % 10 {
		case 0, 1, 2, 3:
			d := fmt.Sprintf("services/Svc%d/", i)
			files[d+"e.json"] = fmt.Sprintf(`{"title": "Service %d", "type": "services.NormalType", "functionList": [{"name": "run", "args": [{"name": "n", "type": "Numeric"}]}, {"name": "check"}]}`, i)
			files[d+"index.js"] = "const util = require('commons/util')\nexports.run = function (args, ctx) {\n  let total = 0\n" + body + "  return util.fmt(total)\n}\nexports.check = () => true\n"
		case 4, 5, 6:
			d := fmt.Sprintf("events/On%d/", i)
			files[d+"e.json"] = fmt.Sprintf(`{"title": "Listener %d", "type": "events.NormalType", "sender": "services.Svc%d", "retry": {"policy": "exponential", "interval": "2s", "maxInterval": "1m"}, "timeout": "10s"}`, i, i-i%10)
			files[d+"index.js"] = "exports.handle = function (event, args) {\n  let total = 0\n" + body + "  return total\n}\n"
		case 7, 8:
			d := fmt.Sprintf("tasks/Job%d/", i)
			files[d+"e.json"] = fmt.Sprintf(`{"title": "Job %d", "type": "tasks.NormalType", "repeatType": "cron", "cron": "*/5 * * * *", "timezone": "Asia/Shanghai", "funcName": "services.Svc%d.run", "argDict": {"n": %d}}`, i, i-i%10, i)
		case 9:
			d := fmt.Sprintf("models/Model%d/", i)
			files[d+"e.json"] = `{"type": "models.NormalType", "fields": [{"name": "id", "type": "AutoInt"}, {"name": "title", "type": "Stext"}, {"name": "due", "type": "Datetime"}]}`
		}
	}
	return newApp(tb, files)
}

// BenchmarkLoad1000 is a cold load of a 1,000-element app (target: under 1 s).
func BenchmarkLoad1000(b *testing.B) {
	dir := genApp(b, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Load(opts(dir))
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Elements) != 1013 {
			b.Fatalf("%d elements", len(s.Elements))
		}
	}
}

// BenchmarkHotReload1000 is one element edited in a 1,000-element app, measured from the
// write until the watcher publishes a snapshot with the change (target: under 200 ms). It
// includes the 30 ms debounce.
func BenchmarkHotReload1000(b *testing.B) {
	dir := genApp(b, 1000)
	snaps := make(chan *Snapshot, 16)
	w := NewWatcher(opts(dir), func(s *Snapshot) { snaps <- s })
	if err := w.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer w.Stop(context.Background())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src := fmt.Sprintf("exports.run = function () { return %d }\nexports.check = () => true\n", i)
		writeFiles(b, dir, map[string]string{"services/Svc0/index.js": src})
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case s := <-snaps:
				if s.Elements["services.Svc0"].Files["index.js"] == src {
					break wait
				}
			case <-deadline:
				b.Fatal("no reload")
			}
		}
	}
}

// BenchmarkReload1000 is the work of that reload alone, without fsnotify or the debounce:
// Watcher.Reload after one element changed, on a watcher whose event loop is not running (so
// nothing else reloads on the same write).
func BenchmarkReload1000(b *testing.B) {
	dir := genApp(b, 1000)
	w := NewWatcher(opts(dir), nil)
	snap, problems := loadStrict(w.sc, w.opts, nil)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	w.cur.Store(snap)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src := fmt.Sprintf("exports.run = function () { return %d }\nexports.check = () => true\n", i)
		writeFiles(b, dir, map[string]string{"services/Svc0/index.js": src})
		s, err := w.Reload(context.Background())
		if err != nil || s.Elements["services.Svc0"].Files["index.js"] != src {
			b.Fatal("reload did not see the change", err)
		}
	}
}
