package webhook

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinel errors of webhook delivery. The event engine decides with errors.Is what a failed
// delivery means for the node (retry, fail at once, or give up because the host stops), so
// every error Deliver and Verify return wraps exactly one of these (or, for a canceled
// context, the context's cause).
var (
	// ErrInvalidURL: the subscriber URL is not an absolute http:// or https:// URL with a host
	// and without user:password. Retrying cannot help; the element's e.json must change.
	ErrInvalidURL = errors.New("webhook: invalid URL")
	// ErrInvalidHeader: an extra header whose name is not an HTTP token or whose value holds
	// a control character; sending it would let a value inject other headers.
	ErrInvalidHeader = errors.New("webhook: invalid header")
	// ErrForbiddenAddress: the URL names, or its host resolves to, a loopback, private,
	// link-local or otherwise non-public address and the app did not opt in. Without this rule
	// an element author could make the host call its own admin API or the cloud metadata
	// service. Retrying cannot help; the message says how to allow it.
	ErrForbiddenAddress = errors.New("webhook: address not allowed")
	// ErrStatus: the subscriber answered, but not with a 2xx. Redirects are answers too: they
	// are never followed, because the target could be a private address. Use errors.As with
	// *StatusError for the status and an excerpt of the answer.
	ErrStatus = errors.New("webhook: subscriber answered with a non-2xx status")
	// ErrTimeout: no complete answer within the request's timeout.
	ErrTimeout = errors.New("webhook: timed out")
	// ErrNetwork: the request did not get an answer: DNS, connect, TLS, or a connection that
	// broke. Usually worth a retry.
	ErrNetwork = errors.New("webhook: network error")
	// ErrBadSignature: a Trellis-Signature header that is malformed or does not match the body
	// under the secret; the request did not come from Trellis or was altered.
	ErrBadSignature = errors.New("webhook: bad signature")
	// ErrSignatureExpired: a valid signature whose timestamp lies outside the tolerance; a
	// replay of an old request, or clocks far apart.
	ErrSignatureExpired = errors.New("webhook: signature timestamp outside tolerance")
)

// excerptLen bounds the part of a non-2xx answer kept in the error: enough for a framework's
// error message, short enough for a log line.
const excerptLen = 200

// StatusError is a non-2xx answer. It wraps ErrStatus; the engine may look at Status to tell a
// subscriber that rejects the event (4xx) from one that is down (5xx).
type StatusError struct {
	// Target is the scheme and host of the subscriber; never the path or query, which often
	// carry credentials (Slack-style webhook URLs).
	Target string
	// Status is the HTTP status code of the answer.
	Status int
	// Excerpt is the start of the answer's body, made printable, at most 200 bytes.
	Excerpt string
}

// Error names the target, the status and the excerpt: what someone reading the node's error
// needs to tell "wrong URL" (404) from "receiver down" (502) without opening the receiver's logs.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: %s answered %d", ErrStatus.Error(), e.Target, e.Status)
	if e.Excerpt != "" {
		msg += fmt.Sprintf(": %q", e.Excerpt)
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrStatus) hold.
func (e *StatusError) Unwrap() error { return ErrStatus }

// excerpt is the printable start of body: invalid UTF-8 and control characters would garble
// the log line the error ends up in.
func excerpt(body []byte) string {
	if len(body) > excerptLen {
		body = body[:excerptLen]
		// Do not cut a character in half.
		for i := 0; i < utf8.UTFMax-1 && len(body) > 0; i++ {
			if r, size := utf8.DecodeLastRune(body); r != utf8.RuneError || size != 1 {
				break
			}
			body = body[:len(body)-1]
		}
	}
	s := strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return '?'
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, string(body))
	return strings.TrimSpace(s)
}
