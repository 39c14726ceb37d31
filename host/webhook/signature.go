package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HeaderSignature carries the signature of a delivery. The receiver checks it with Verify (or
// the few lines in docs/webhooks.md) to know the request came from a Trellis host that knows
// the secret, and that the body was not altered on the way.
const HeaderSignature = "Trellis-Signature"

// DefaultTolerance is how far a signature's timestamp may be from the receiver's clock: wide
// enough for clock skew and a slow network, narrow enough that a captured request cannot be
// replayed for long.
const DefaultTolerance = 5 * time.Minute

// Sign returns the Trellis-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<unix seconds>." + body)>". The timestamp is
// inside the MAC so a receiver can refuse old requests, which makes replays time-limited. The
// scheme is Stripe's, so receivers can reuse code they already trust.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Trellis-Signature header against body, the raw bytes received (not a
// re-encoded parse of them: any change of spacing or key order breaks the MAC). It is what a Go
// receiver calls, and what the tests use to prove Deliver signs correctly.
//
// The header may carry several v1 values (a sender rotating its secret); one match is enough.
// Unknown keys are ignored so later schemes (v2=...) can be added beside v1. With tolerance >
// 0, a timestamp further than tolerance from now fails with ErrSignatureExpired; tolerance <= 0
// skips that check (use DefaultTolerance unless you have a reason). Everything else fails with
// ErrBadSignature. The comparison is constant-time.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if secret == "" {
		return fmt.Errorf("%w: no secret to verify with", ErrBadSignature)
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil && len(sig) == sha256.Size {
				sigs = append(sigs, sig)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no timestamp (want \"t=<unix seconds>,v1=<hex>\")", ErrBadSignature)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature (want \"t=<unix seconds>,v1=<hex>\")", ErrBadSignature)
	}
	want := mac(secret, ts, body)
	matched := false
	for _, sig := range sigs {
		// No early exit: the time taken must not depend on which value matched.
		if hmac.Equal(sig, want) {
			matched = true
		}
	}
	if !matched {
		return fmt.Errorf("%w: the signature does not match the body under this secret", ErrBadSignature)
	}
	// Checked after the MAC, so only an authentic timestamp can produce this error.
	if tolerance > 0 {
		if age := now.Sub(time.Unix(sec, 0)); age > tolerance || age < -tolerance {
			return fmt.Errorf("%w: signed at %s, %s from now (tolerance %s)", ErrSignatureExpired,
				time.Unix(sec, 0).UTC().Format(time.RFC3339), age.Round(time.Second), tolerance)
		}
	}
	return nil
}
