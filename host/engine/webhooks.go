package engine

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/host/webhook"
)

// sameListener compares two listener configurations, webhook and model filters included.
func sameListener(a, b *Listener) bool { return reflect.DeepEqual(*a, *b) }

// allowPrivateNetwork reads app.json's "webhooks": {"allowPrivateNetwork": true}.
func allowPrivateNetwork(s *registry.Snapshot) bool {
	wh, _ := s.App.Raw["webhooks"].(map[string]any)
	allow, _ := wh["allowPrivateNetwork"].(bool)
	return allow
}

// deliverWebhook POSTs the event, signed, to the listener's webhook: a 2xx answer is success
// (mode sync) or the start of a wait for the callback (mode async).
func (e *Engine) deliverWebhook(ctx context.Context, l *Listener, env *envelope) (jsvm.Result, error) {
	body, err := json.Marshal(env.event())
	if err != nil {
		return jsvm.Result{}, err
	}
	client := e.webhooks
	if allowPrivateNetwork(e.opts.Snapshot()) {
		client = e.webhooksPrivate
	}
	resp, err := client.Deliver(ctx, webhook.Request{
		URL: l.Webhook.URL, Secret: l.Webhook.Secret, Body: body, Timeout: l.Webhook.Timeout,
		Headers: map[string]string{
			webhook.HeaderEventID: env.EventID, webhook.HeaderNodeID: env.NodeID, webhook.HeaderAttempt: strconv.Itoa(env.Attempt),
		},
	})
	if err != nil {
		code := vocab.CodeJSError
		switch {
		case errors.Is(err, webhook.ErrTimeout):
			code = vocab.CodeTimeout
		case errors.Is(err, webhook.ErrStatus):
			code = "webhook_status"
		case errors.Is(err, webhook.ErrForbiddenAddress):
			code = "webhook_forbidden"
		case errors.Is(err, webhook.ErrNetwork), errors.Is(err, webhook.ErrInvalidURL):
			code = "webhook_error"
		}
		return jsvm.Result{}, &jsvm.Error{Code: code, Message: err.Error(), Element: l.FullName}
	}
	res := jsvm.Result{WaitCallback: l.Webhook.Async}
	var answer any
	if json.Unmarshal(resp.Body, &answer) == nil {
		res.Value = answer
	} else if len(resp.Body) > 0 {
		res.Value = string(resp.Body)
	}
	return res, nil
}
