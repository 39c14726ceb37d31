package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/signals"
)

// signalBatch is how many signals the stream writes between two flushes at most.
const signalBatch = 256

func (s *Server) routeSignals(e *echo.Echo) {
	e.GET("/api/signals/stream", s.signalStream)
}

// signalStream is GET /api/signals/stream: the host's signals as server-sent events (docs/signals.md).
// Each event is "id: <bus id>", "event: <event_type>", "data: <the signal as JSON>". A client
// resuming with Last-Event-ID (the header EventSource sends on reconnecting, or ?lastEventId=)
// first gets what the host still holds after that id; when that is not everything since, an
// event "gap" says so. ?eventTypes=a,b keeps those signals only; ?follow=false ends the answer
// after what is held instead of waiting for more. A comment every heartbeat keeps proxies from
// closing an idle stream; the stream ends when the client goes, the host stops its signals, or
// the server stops.
func (s *Server) signalStream(c echo.Context) error {
	if s.deps.Signals == nil {
		return errUnavailable("signals are not served by this server")
	}
	q := c.QueryParams()
	for k := range q {
		if k != "eventTypes" && k != "follow" && k != "lastEventId" {
			return errBadRequest("unknown query parameter %q (eventTypes, follow and lastEventId are)", k)
		}
	}
	var filter map[string]bool
	if raw := q.Get("eventTypes"); raw != "" {
		filter = map[string]bool{}
		for _, t := range strings.Split(raw, ",") {
			t = strings.TrimSpace(t)
			if !signals.IsSignal(t) {
				return errBadRequest("eventTypes: %q is no signal Trellis emits; the signals are: %s", clip(t), strings.Join(signals.Names(), ", "))
			}
			filter[t] = true
		}
	}
	follow := true
	switch q.Get("follow") {
	case "", "true", "1":
	case "false", "0":
		follow = false
	default:
		return errBadRequest("follow must be true or false, got %q", clip(q.Get("follow")))
	}
	lastID := c.Request().Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = q.Get("lastEventId")
	}
	r, gap, err := s.deps.Signals.SignalsFrom(lastID)
	if err != nil {
		return err
	}

	res := c.Response()
	h := res.Header()
	h.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	res.WriteHeader(http.StatusOK)
	if snap := s.deps.App.Snapshot(); snap != nil && !snap.App.Signals.Enabled {
		_, _ = io.WriteString(res, `: signals are off: set "signals": {"enabled": true} in app.json`+"\n\n")
	}
	if gap {
		writeGap(res, lastID)
	}
	res.Flush()

	heartbeat := time.NewTicker(s.opts.SignalHeartbeat)
	defer heartbeat.Stop()
	ctx := c.Request().Context()
	stopping := s.stopping()
	for {
		recs, lost, wake, done := r.Next(signalBatch)
		if lost {
			writeGap(res, "")
		}
		for _, rec := range recs {
			if filter != nil && !filter[string(rec.Type)] {
				continue
			}
			if err := writeSignal(res, rec); err != nil {
				return nil // the client is gone
			}
		}
		if len(recs) > 0 || lost {
			res.Flush()
		}
		if len(recs) == signalBatch {
			continue
		}
		if !follow {
			return nil
		}
		select {
		case <-wake:
		case <-heartbeat.C:
			if _, err := io.WriteString(res, ": keep-alive\n\n"); err != nil {
				return nil
			}
			res.Flush()
		case <-ctx.Done():
			return nil
		case <-done:
			return nil
		case <-stopping:
			return nil
		}
	}
}

func writeSignal(w io.Writer, rec signals.Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"id": rec.ID, "event_type": rec.Type, "error": "its data is not JSON"})
	}
	_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", rec.ID, rec.Type, b)
	return err
}

// writeGap tells the client that signals after lastID (or since its last event) may be missing:
// they fell out of what the host keeps.
func writeGap(w io.Writer, lastID string) {
	b, _ := json.Marshal(map[string]any{"lastEventId": lastID,
		"message": "signals after this point may be missing: the host keeps only the latest ones (docs/signals.md)"})
	_, _ = fmt.Fprintf(w, "event: gap\ndata: %s\n\n", b)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
