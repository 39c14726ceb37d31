package bus

import (
	"fmt"
	"unicode/utf8"
)

// MaxNameLen bounds topic, group and consumer names, which backends use in keys and logs.
const MaxNameLen = 512

// CheckName says why a topic, group or consumer name is unusable, wrapping ErrInvalid; kind
// ("topic", "group", "consumer") names it in the message. Backends call it so every backend
// accepts the same names: non-empty UTF-8 of at most MaxNameLen bytes, without control
// characters.
func CheckName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: the %s name is empty", ErrInvalid, kind)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: the %s name is %d bytes long (at most %d)", ErrInvalid, kind, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: the %s name %q is not valid UTF-8", ErrInvalid, kind, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: the %s name %q contains a control character", ErrInvalid, kind, name)
		}
	}
	return nil
}

// CheckSubscribe says why a Subscribe call's arguments are unusable, wrapping ErrInvalid.
func CheckSubscribe(topic, group string, o SubscribeOptions) error {
	if err := CheckName("topic", topic); err != nil {
		return err
	}
	if err := CheckName("group", group); err != nil {
		return err
	}
	if err := CheckName("consumer", o.Consumer); err != nil {
		return fmt.Errorf("%w (SubscribeOptions.Consumer names this member of the group, e.g. the host id)", err)
	}
	if o.Prefetch < 0 || o.Prefetch > MaxPrefetch {
		return fmt.Errorf("%w: Prefetch %d is out of range 0..%d (0 = default %d)", ErrInvalid, o.Prefetch, MaxPrefetch, DefaultPrefetch)
	}
	if o.Start != StartOldest && o.Start != StartNewest {
		return fmt.Errorf("%w: unknown Start position %d (StartOldest or StartNewest)", ErrInvalid, o.Start)
	}
	return nil
}

// DefaultPrefetch is the Prefetch of a subscription that leaves it 0; MaxPrefetch bounds it.
const (
	DefaultPrefetch = 64
	MaxPrefetch     = 10000
)
