package pgmodels

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Option changes how Open connects.
type Option func(*options)

type options struct {
	schema         string
	maxConns       int
	connectTimeout time.Duration
}

// Defaults of the options.
const (
	DefaultMaxConns       = 8
	DefaultConnectTimeout = 5 * time.Second
)

// WithSchema keeps every table in the PostgreSQL schema name (created when missing) instead of
// the DSN's search_path, so several apps or test runs can share one database without meeting.
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithMaxConns bounds the connections the store holds (default 8); calls beyond it wait.
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = n } }

// WithConnectTimeout bounds each connection attempt (default 5 s, unless the DSN sets
// connect_timeout), so an unreachable server is reported quickly as models.ErrUnavailable.
func WithConnectTimeout(d time.Duration) Option { return func(o *options) { o.connectTimeout = d } }

func (o options) withDefaults() options {
	if o.maxConns == 0 {
		o.maxConns = DefaultMaxConns
	}
	if o.connectTimeout == 0 {
		o.connectTimeout = DefaultConnectTimeout
	}
	return o
}

func (o options) validate() error {
	if o.maxConns < 1 {
		return fmt.Errorf("%w: WithMaxConns(%d); give at least 1", ErrInvalidOptions, o.maxConns)
	}
	if o.connectTimeout < 0 {
		return fmt.Errorf("%w: WithConnectTimeout(%s); give a positive duration", ErrInvalidOptions, o.connectTimeout)
	}
	if o.schema != "" && (len(o.schema) > 63 || !utf8.ValidString(o.schema) || containsNUL(o.schema)) {
		return fmt.Errorf("%w: WithSchema(%q); give a name of at most 63 bytes", ErrInvalidOptions, o.schema)
	}
	return nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}
