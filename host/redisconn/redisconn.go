// Package redisconn turns a --redis URL into go-redis clients, and holds the one rule of key
// naming that depends on what the URL points to. Three kinds of deployment:
//
//	redis://[user:pass@]host:6379/0          one server (rediss:// for TLS, unix:///path?db=0)
//	redis+cluster://[user:pass@]h1:7000,h2:7001,h3:7002[?option=value…]
//	                                          a Redis Cluster, given one or more seed nodes
//	redis+sentinel://[user:pass@]s1:26379,s2:26379[/db]?master_name=NAME[&password=…]
//	                                          the master that Sentinel names (user:pass are the
//	                                          Sentinels' credentials; username/password
//	                                          parameters the master's)
//
// (rediss+cluster:// and rediss+sentinel:// use TLS.) go-redis's own parsers read the options, so
// every query parameter go-redis documents (dial_timeout, pool_size, …) works in each form.
//
// The key rule: on a Redis Cluster a Lua script or a MULTI may touch only keys of one hash slot,
// and a key's slot is the hash of its hash tag (the first {…} in it) when it has one, of the whole
// key otherwise. A package whose scripts reach many keys names them all under one tag
// (OneSlot); a package whose keys are independent lets them spread. On one server or through
// Sentinel the tags would change nothing but the names, so packages keep the names they had
// before clusters were supported (see IsCluster): an upgrade finds its data where it was.
//
// It must not hold state, open connections outside NewClient, or know any package's keys.
package redisconn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrInvalidURL is wrapped by every error of ParseURL.
var ErrInvalidURL = errors.New("redisconn: invalid Redis URL")

// Kind is the kind of deployment a URL names.
type Kind int

const (
	Single   Kind = iota + 1 // one server: redis://, rediss://, unix://
	Cluster                  // a Redis Cluster: redis+cluster://
	Sentinel                 // a master found through Sentinel: redis+sentinel://
)

func (k Kind) String() string {
	switch k {
	case Single:
		return "single"
	case Cluster:
		return "cluster"
	case Sentinel:
		return "sentinel"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Options are the client options of one deployment: exactly one field is set.
type Options struct {
	Single   *redis.Options
	Cluster  *redis.ClusterOptions
	Failover *redis.FailoverOptions
}

// ParseURL reads a Redis URL of any of the three forms (see the package doc). Errors wrap
// ErrInvalidURL and never repeat a password.
func ParseURL(raw string) (Options, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return Options{}, fmt.Errorf("%w %q: no scheme; want redis://host:6379/0, redis+cluster://host:7000,host:7001 or redis+sentinel://host:26379?master_name=NAME",
			ErrInvalidURL, Redact(raw))
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return Options{}, parseErr(raw, err)
		}
		return Options{Single: o}, nil
	case "redis+cluster", "rediss+cluster":
		u, path, err := expandHosts(raw, strings.TrimSuffix(strings.ToLower(scheme), "+cluster"))
		if err != nil {
			return Options{}, err
		}
		if path != "" && path != "/" && path != "/0" {
			return Options{}, fmt.Errorf("%w %q: path %q: a Redis Cluster has database 0 only; leave the path out",
				ErrInvalidURL, Redact(raw), path)
		}
		o, err := redis.ParseClusterURL(u)
		if err != nil {
			return Options{}, parseErr(raw, err)
		}
		return Options{Cluster: o}, nil
	case "redis+sentinel", "rediss+sentinel":
		u, _, err := expandHosts(raw, strings.TrimSuffix(strings.ToLower(scheme), "+sentinel"))
		if err != nil {
			return Options{}, err
		}
		o, err := redis.ParseFailoverURL(u)
		if err != nil {
			return Options{}, parseErr(raw, err)
		}
		if o.MasterName == "" {
			return Options{}, fmt.Errorf("%w %q: no master_name parameter; name the master the Sentinels watch (…?master_name=mymaster)",
				ErrInvalidURL, Redact(raw))
		}
		return Options{Failover: o}, nil
	}
	return Options{}, fmt.Errorf("%w %q: scheme %q; want redis, rediss, unix, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel",
		ErrInvalidURL, Redact(raw), scheme)
}

// parseErr wraps a go-redis parse error. url.Parse's errors quote the whole URL, password
// included: those get the redacted URL only.
func parseErr(raw string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("%w %q: %v", ErrInvalidURL, Redact(raw), err)
}

// expandHosts rewrites a +cluster or +sentinel URL with comma-separated hosts into the form
// go-redis parses: the first host in the authority, the others as addr parameters. It also
// returns the URL's path.
func expandHosts(raw, scheme string) (string, string, error) {
	_, rest, _ := strings.Cut(raw, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, authority = authority[:i+1], authority[i+1:]
	}
	hosts := strings.Split(authority, ",")
	for _, h := range hosts {
		if h == "" {
			return "", "", fmt.Errorf("%w %q: an empty host in %q; list the nodes as host:port,host:port",
				ErrInvalidURL, Redact(raw), authority)
		}
	}
	path, query, _ := strings.Cut(tail, "?")
	query, fragment, _ := strings.Cut(query, "#")
	if fragment != "" {
		return "", "", fmt.Errorf("%w %q: a fragment (#…) means nothing here", ErrInvalidURL, Redact(raw))
	}
	params := make([]string, 0, len(hosts))
	if query != "" {
		params = append(params, query)
	}
	for _, h := range hosts[1:] {
		params = append(params, "addr="+url.QueryEscape(h))
	}
	u := scheme + "://" + userinfo + hosts[0] + path
	if len(params) > 0 {
		u += "?" + strings.Join(params, "&")
	}
	return u, path, nil
}

// Redact returns raw with any password replaced by xxxxx (for messages and logs); a URL too
// broken to parse comes back as its scheme only.
func Redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		if strings.Contains(raw, "@") {
			return "(unparseable)"
		}
		return raw
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		user, _, hasPass := strings.Cut(authority[:i], ":")
		if hasPass {
			authority = user + ":xxxxx" + authority[i:]
		}
	}
	tail := rest[end:]
	if path, query, ok := strings.Cut(tail, "?"); ok {
		if q, err := url.ParseQuery(query); err == nil {
			for _, k := range []string{"password", "sentinel_password"} {
				if q.Has(k) {
					q.Set(k, "xxxxx")
				}
			}
			tail = path + "?" + q.Encode()
		} else {
			tail = path + "?…"
		}
	}
	return scheme + "://" + authority + tail
}

// Kind says which deployment o names.
func (o Options) Kind() Kind {
	switch {
	case o.Cluster != nil:
		return Cluster
	case o.Failover != nil:
		return Sentinel
	default:
		return Single
	}
}

// Addr names the servers, for messages: host:port, the cluster's seed nodes, or the master's
// name and its Sentinels.
func (o Options) Addr() string {
	switch {
	case o.Cluster != nil:
		return strings.Join(o.Cluster.Addrs, ",")
	case o.Failover != nil:
		return fmt.Sprintf("master %q via Sentinel %s", o.Failover.MasterName, strings.Join(o.Failover.SentinelAddrs, ","))
	case o.Single != nil:
		return o.Single.Addr
	}
	return "(no address)"
}

// Common are the settings every kind of client has. Tune reads and changes them.
type Common struct {
	ClientName                             string
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	DialerRetries, MaxRetries              int
	PoolSize, MinIdleConns                 int
	ContextTimeoutEnabled                  bool
}

// Tune returns a copy of o whose common settings f has changed (f sees the current ones, so
// it can fill only what the URL left zero). o itself is not changed.
func (o Options) Tune(f func(c *Common)) Options {
	switch {
	case o.Cluster != nil:
		x := *o.Cluster
		tune(f, &x.ClientName, &x.DialTimeout, &x.ReadTimeout, &x.WriteTimeout, &x.DialerRetries, &x.MaxRetries,
			&x.PoolSize, &x.MinIdleConns, &x.ContextTimeoutEnabled)
		return Options{Cluster: &x}
	case o.Failover != nil:
		x := *o.Failover
		tune(f, &x.ClientName, &x.DialTimeout, &x.ReadTimeout, &x.WriteTimeout, &x.DialerRetries, &x.MaxRetries,
			&x.PoolSize, &x.MinIdleConns, &x.ContextTimeoutEnabled)
		return Options{Failover: &x}
	default:
		var x redis.Options
		if o.Single != nil {
			x = *o.Single
		}
		tune(f, &x.ClientName, &x.DialTimeout, &x.ReadTimeout, &x.WriteTimeout, &x.DialerRetries, &x.MaxRetries,
			&x.PoolSize, &x.MinIdleConns, &x.ContextTimeoutEnabled)
		return Options{Single: &x}
	}
}

// tune runs f over the fields of one kind of options (go-redis has three option types with the
// same fields and no common interface).
func tune(f func(*Common), name *string, dial, read, write *time.Duration, dialerRetries, retries, pool, minIdle *int, ctxTimeout *bool) {
	c := Common{*name, *dial, *read, *write, *dialerRetries, *retries, *pool, *minIdle, *ctxTimeout}
	f(&c)
	*name, *dial, *read, *write = c.ClientName, c.DialTimeout, c.ReadTimeout, c.WriteTimeout
	*dialerRetries, *retries, *pool, *minIdle, *ctxTimeout = c.DialerRetries, c.MaxRetries, c.PoolSize, c.MinIdleConns, c.ContextTimeoutEnabled
}

// NewClient returns a client of the deployment: a *redis.Client for one server or through
// Sentinel (go-redis follows failovers), a *redis.ClusterClient for a cluster. Maintenance
// notifications are off unless the options turn them on: Redis 7 has none, and go-redis's
// "auto" mode would try the handshake on every new connection and then rewrite its options,
// which races between connections held apart from the pool (the bus's blocking readers).
func (o Options) NewClient() redis.UniversalClient {
	off := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch {
	case o.Cluster != nil:
		x := *o.Cluster
		if x.MaintNotificationsConfig == nil {
			x.MaintNotificationsConfig = off
		}
		return redis.NewClusterClient(&x)
	case o.Failover != nil:
		x := *o.Failover
		return redis.NewFailoverClient(&x)
	default:
		var x redis.Options
		if o.Single != nil {
			x = *o.Single
		}
		if x.MaintNotificationsConfig == nil {
			x.MaintNotificationsConfig = off
		}
		return redis.NewClient(&x)
	}
}

// IsCluster says whether c is a Redis Cluster client, whose scripts must keep to one slot.
func IsCluster(c redis.UniversalClient) bool {
	_, ok := c.(*redis.ClusterClient)
	return ok
}

// HasHashTag says whether Redis Cluster hashes key by a tag: a '{' followed, later, by a '}'
// with at least one byte between them (Redis's rule; "{}" is no tag).
func HasHashTag(key string) bool {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(key[i+1:], '}')
	return j > 0
}

// OneSlot returns a key prefix under which every key shares one cluster slot: prefix itself
// when it has a hash tag, else prefix with its text (less a trailing ':') as the tag —
// "trellis:app:timers:" becomes "{trellis:app:timers}:".
func OneSlot(prefix string) string {
	if HasHashTag(prefix) {
		return prefix
	}
	return "{" + strings.TrimSuffix(prefix, ":") + "}:"
}
