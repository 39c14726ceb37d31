package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/engine"
)

// GET /api/events/listeners (registered in routeEvents): every listener of the app version the
// host runs, with its configuration and its live backlog on the bus.

// listenerInfo is one listener as the console shows it. A webhook's secret never leaves the host.
type listenerInfo struct {
	FullName            string       `json:"fullName"`
	Sender              string       `json:"sender"`
	Model               string       `json:"model,omitempty"`
	Operate             []string     `json:"operate,omitempty"`
	Fields              []string     `json:"fields,omitempty"`
	EventType           string       `json:"eventType"`
	Handler             string       `json:"handler"`
	HandlerType         string       `json:"handlerType"`
	BroadcastIdentifier string       `json:"broadcastIdentifier"`
	ReliableDelivery    bool         `json:"reliableDelivery"`
	RequeueOnError      bool         `json:"requeueOnError"`
	Retry               retryInfo    `json:"retry"`
	Timeout             string       `json:"timeout"`
	Enabled             bool         `json:"enabled"`
	Webhook             *webhookInfo `json:"webhook"`
	Lag                 *listenerLag `json:"lag"`
}

type retryInfo struct {
	Policy      string `json:"policy"`
	Interval    string `json:"interval,omitempty"`
	MaxAttempts int    `json:"maxAttempts"`
	Window      string `json:"window,omitempty"`
	MaxInterval string `json:"maxInterval,omitempty"`
}

type webhookInfo struct {
	URL     string `json:"url"`
	Mode    string `json:"mode"`
	Timeout string `json:"timeout"`
}

// listenerLag is the backlog summed over the listener's groups, and the groups themselves.
type listenerLag struct {
	Pending     int64          `json:"pending"`
	Undelivered int64          `json:"undelivered"`
	Groups      []bus.GroupLag `json:"groups"`
}

func durationText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

func listenerInfoOf(l *engine.Listener) listenerInfo {
	info := listenerInfo{
		FullName: l.FullName, Sender: l.Sender, Model: l.Model, Operate: l.Operate, Fields: l.Fields,
		EventType: l.EventType, Handler: l.Handler, HandlerType: l.HandlerType, BroadcastIdentifier: l.BroadcastIdentifier,
		ReliableDelivery: l.Reliable, RequeueOnError: l.RequeueOnError, Timeout: durationText(l.Timeout), Enabled: l.Enabled,
		Retry: retryInfo{Policy: l.Retry.Policy, Interval: durationText(l.Retry.Interval), MaxAttempts: l.Retry.MaxAttempts,
			Window: durationText(l.Retry.Window), MaxInterval: durationText(l.Retry.MaxInterval)},
	}
	if l.Webhook != nil {
		mode := "sync"
		if l.Webhook.Async {
			mode = "async"
		}
		info.Webhook = &webhookInfo{URL: l.Webhook.URL, Mode: mode, Timeout: durationText(l.Webhook.Timeout)}
	}
	return info
}

// listenersDep is Deps.Listeners, or App when it is one.
func (s *Server) listenersDep() (Listeners, error) {
	if s.deps.Listeners != nil {
		return s.deps.Listeners, nil
	}
	if ls, ok := s.deps.App.(Listeners); ok {
		return ls, nil
	}
	return nil, errUnavailable("this host does not list its event listeners")
}

// eventListeners answers {listeners, lagError}: the listeners sorted by fullName, each with its
// lag (null when the bus could not say: lagError tells why, and the listeners are still listed).
func (s *Server) eventListeners(c echo.Context) error {
	src, err := s.listenersDep()
	if err != nil {
		return err
	}
	ls := src.EventListeners()
	out := make([]listenerInfo, 0, len(ls))
	for _, l := range ls {
		out = append(out, listenerInfoOf(l))
	}
	body := map[string]any{"listeners": out}
	lag, err := s.deps.Events.EventLag(c.Request().Context())
	if err != nil {
		body["lagError"] = err.Error()
	}
	if lag != nil {
		for i := range out {
			groups, ok := lag[out[i].FullName]
			if !ok {
				continue
			}
			sum := &listenerLag{Groups: groups}
			if sum.Groups == nil {
				sum.Groups = []bus.GroupLag{}
			}
			for _, g := range groups {
				sum.Pending += g.Pending
				sum.Undelivered += g.Undelivered
			}
			out[i].Lag = sum
		}
	}
	return c.JSON(http.StatusOK, body)
}
