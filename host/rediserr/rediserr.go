// Package rediserr classifies go-redis errors for the packages that keep state in Redis (the
// event bus, the task store): whether an error means Redis cannot serve right now, so the
// caller reports "unavailable" and may retry, rather than a bug in a command or a script.
package rediserr

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// transient are the prefixes of server replies that mean "not now": loading, failing over, busy.
var transient = []string{"LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "BUSY ", "NOREPLICAS"}

// Unavailable says whether err means Redis cannot serve now (down, unreachable, loading,
// failing over). redis.Nil and other server replies are answers, not outages.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range transient {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return true // network errors, timeouts, a closed client
}
