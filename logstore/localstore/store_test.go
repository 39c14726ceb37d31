package localstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/localstore"
	"github.com/trellis-run/trellis/logstore/logstoretest"
)

func open(t *testing.T, dir string) *localstore.Store {
	t.Helper()
	st, err := localstore.Open(dir, localstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	// A database per subtest: a host opens one Store per data directory.
	logstoretest.Run(t, func(t *testing.T) logstore.Store { return open(t, t.TempDir()) }, logstoretest.Features{})
}
