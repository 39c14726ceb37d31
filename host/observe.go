package host

import (
	"context"
	"log/slog"

	"github.com/trellis-run/trellis/host/execlog"
	"github.com/trellis-run/trellis/host/isolate"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/logstore"
)

// What the host tells its operators: every row the parts write passes here on its way to the
// log writer, so one place turns the rows that matter — a failed try, a dead letter — into a line
// of cfg.Logger and every row into cfg.Metrics, without the engine or the task center knowing of
// either. Worker ends (from the isolated pool) and hot reload results come here too.

// observedSink is the log writer as the parts see it: rows it has taken (durably) are counted
// and the notable ones logged.
type observedSink struct {
	execlog.Sink
	h *Host
}

func (s observedSink) Write(ctx context.Context, rows ...logstore.Row) error {
	if err := s.Sink.Write(ctx, rows...); err != nil {
		return err
	}
	s.h.observeRows(rows)
	return nil
}

// observed wraps the log writer in the host's observers.
func (h *Host) observed(sink execlog.Sink) execlog.Sink { return observedSink{Sink: sink, h: h} }

// maxLoggedMessage bounds an error message in a log line: the row keeps all of it.
const maxLoggedMessage = 500

func (h *Host) observeRows(rows []logstore.Row) {
	if f := h.cfg.ObserveRows; f != nil {
		f(rows)
	}
	if m := h.cfg.Metrics; m != nil {
		m.ObserveRows(rows...)
	}
	log := h.cfg.Logger
	for i := range rows {
		r := &rows[i]
		if r.Kind == logstore.KindLag || r.Kind == logstore.KindService {
			continue // lag samples are no failures; a failed service call is the caller's answer
		}
		var msg string
		level := slog.LevelWarn
		switch r.Stage {
		case logstore.StageRetryScheduled, logstore.StageRequeued:
			if r.Error == nil {
				continue // a task node skipped back to its retry: no run failed
			}
			msg = "handler failed; it will be retried"
		case logstore.StageFailed:
			msg = "handler failed"
		case logstore.StageCallbackFailed, logstore.StageCallbackTimeout:
			msg = "callback failed"
		case logstore.StageDeadLettered:
			msg, level = "dead letter: the last try failed; resend runs it again", slog.LevelError
		default:
			continue
		}
		attrs := []slog.Attr{slog.String("kind", r.Kind), slog.String("fullName", r.FullName), slog.String("node", r.NodeID),
			slog.String("request", r.RequestID), slog.Int("attempt", r.Attempt), slog.String("stage", r.Stage)}
		if r.Error != nil {
			attrs = append(attrs, slog.String("code", r.Error.Code), slog.String("error", clip(r.Error.Message, maxLoggedMessage)))
		}
		log.LogAttrs(context.Background(), level, msg, attrs...)
	}
}

// workerExited logs and counts an isolated worker that ended while the pool ran.
func (h *Host) workerExited(e isolate.WorkerExit) {
	if m := h.cfg.Metrics; m != nil {
		m.WorkerExit(e.Killed, e.Code)
	}
	attrs := []slog.Attr{slog.Int("pid", e.PID), slog.Bool("killed", e.Killed)}
	if e.Code != "" {
		attrs = append(attrs, slog.String("code", e.Code), slog.String("reason", clip(e.Reason, maxLoggedMessage)))
	}
	msg, level := "sandbox worker ended; a new one replaces it", slog.LevelInfo
	if e.Killed {
		msg, level = "sandbox worker killed; a new one replaces it", slog.LevelWarn
	} else if e.Code != "" {
		msg, level = "sandbox worker crashed; a new one replaces it", slog.LevelError
	}
	h.cfg.Logger.LogAttrs(context.Background(), level, msg, attrs...)
}

// logReload says what a hot reload came to, once applyReload has made s current.
func (h *Host) logReload(s *registry.Snapshot) {
	log := h.cfg.Logger
	if p := h.reloadErr.Load(); p != nil {
		log.Error("hot reload: a part refused the new version; it keeps running the last one it took", "app", s.App.Name, "err", *p)
		return
	}
	if n := len(s.Problems); n > 0 {
		first := s.Problems[0]
		log.Warn("hot reload: applied; elements with problems keep their last good version", "app", s.App.Name, "problems", n,
			"first", first.String())
		return
	}
	log.Info("hot reload: applied", "app", s.App.Name)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
