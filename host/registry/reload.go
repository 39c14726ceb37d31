package registry

import "reflect"

// maxFallbackRounds bounds the last-good loop. Each round pins at least one more unit, so it
// ends long before this on any real app; the bound only guards against a bug looping forever.
const maxFallbackRounds = 16

// reload builds the next snapshot from disk on top of last, the snapshot being served. Units
// (elements, commons files) that are broken on disk are replaced by their version in last, or
// left out when last has none, and their problems go to Snapshot.Problems. A broken app.json
// (or extends) keeps all of last; its problems are listed with those of the elements on disk,
// as a check would list them.
func (sc *scanner) reload(opts Options, last *Snapshot) *Snapshot {
	c, appProblems := sc.gather(opts)
	if len(appProblems) > 0 {
		if c != nil {
			_, tagged := c.evaluate(opts, last)
			appProblems = append(appProblems, problemsOf(tagged)...)
		}
		sortProblems(appProblems)
		next := *last
		next.Problems = dedupeProblems(appProblems)
		return &next
	}
	pinned := map[string]bool{}
	disk := map[string]*source{} // fullName → the broken source on disk a fallback replaced
	var reported []Problem
	for round := 0; ; round++ {
		snap, tagged := c.evaluate(opts, last)
		broken := map[string][]Problem{}
		for _, t := range tagged {
			if t.unit != unitLoose && !pinned[t.unit] {
				broken[t.unit] = append(broken[t.unit], t.Problem)
			}
		}
		if len(broken) == 0 || round == maxFallbackRounds {
			all := append(reported, problemsOf(tagged)...)
			sortProblems(all)
			snap.Problems = dedupeProblems(all)
			if len(disk) > 0 {
				snap.disk = disk
			}
			return snap
		}
		for unit, ps := range broken {
			pinned[unit] = true
			reported = append(reported, ps...)
			if s := c.fallBack(unit, last); s != nil && !s.skip && s.origin == OriginApp {
				disk[s.fullName] = s
			}
		}
	}
}

// fallBack replaces a unit of the candidate by its version in last, or removes it. It returns
// the element source it took out (nil for commons, or when there was none).
func (c *candidate) fallBack(unit string, last *Snapshot) *source {
	if old, ok := last.units[unit]; ok && !old.skip {
		for i, s := range c.sources {
			if s.key == unit {
				c.sources[i] = old
				return s
			}
		}
		// Deleted from disk but broken? Cannot happen: a deleted unit has no problems.
		return nil
	}
	if old, ok := last.cunits[unit]; ok {
		for i, f := range c.commons {
			if f.key == unit {
				c.commons[i] = old
				return nil
			}
		}
		return nil
	}
	for i, s := range c.sources {
		if s.key == unit {
			c.sources = append(c.sources[:i:i], c.sources[i+1:]...)
			return s
		}
	}
	for i, f := range c.commons {
		if f.key == unit {
			c.commons = append(c.commons[:i:i], c.commons[i+1:]...)
			return nil
		}
	}
	return nil
}

// sameSnapshot reports whether next would tell a listener nothing new.
func sameSnapshot(a, b *Snapshot) bool {
	if len(a.Elements) != len(b.Elements) || len(a.Commons) != len(b.Commons) {
		return false
	}
	for n, e := range a.Elements {
		if b.Elements[n] != e {
			return false
		}
	}
	for k, v := range a.Commons {
		if bv, ok := b.Commons[k]; !ok || bv != v {
			return false
		}
	}
	// The broken files on disk are news too: the editor shows them, and a second broken edit
	// may well report the same problems.
	if len(a.disk) != len(b.disk) {
		return false
	}
	for n, s := range a.disk {
		if b.disk[n] != s {
			return false
		}
	}
	return reflect.DeepEqual(a.App, b.App) && reflect.DeepEqual(a.Problems, b.Problems)
}
