package logstore_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// A page whose offset, (page-1)×pageSize, would wrap around is refused, naming the largest page
// there may be; it used to answer the first page (issue 12, case 7).
func TestQueryPageBounds(t *testing.T) {
	t.Parallel()
	for _, q := range []logstore.Query{
		{Page: math.MaxInt64 - 1, PageSize: 20},
		{Page: math.MaxInt64, PageSize: 1},
		{Page: logstore.MaxOffset/logstore.MaxPageSize + 2, PageSize: logstore.MaxPageSize},
	} {
		err := q.Validate()
		require.ErrorIs(t, err, logstore.ErrInvalidQuery, "%+v", q)
		require.ErrorContains(t, err, "is past any row", "%+v", q)
	}
	last := logstore.MaxOffset/logstore.MaxPageSize + 1
	require.NoError(t, logstore.Query{Page: last, PageSize: logstore.MaxPageSize}.Validate())
	require.ErrorContains(t, logstore.Query{Page: last + 1, PageSize: logstore.MaxPageSize}.Validate(), "page must be at most 1099511628")
	_, err := logstore.QueryFromArgs(map[string]any{"page": int64(math.MaxInt64 - 1)}, nil)
	require.ErrorContains(t, err, "past any row", "getEventLog's arguments too")
}
