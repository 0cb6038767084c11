package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// api is one supported API key: its version range and handler.
type api struct {
	min, max int16
	handle   func(c *conn, req *request) (kmsg.Response, error)
}

// handler adapts a typed handler to the table.
func handler[R kmsg.Request](f func(c *conn, req R) (kmsg.Response, error)) func(*conn, *request) (kmsg.Response, error) {
	return func(c *conn, req *request) (kmsg.Response, error) { return f(c, req.body.(R)) }
}

// apis are the API keys Weir serves and their versions. Minimums reach back
// to the non-flexible versions old clients use (sarama sends fixed versions
// without asking; kafkajs only non-flexible ones); Produce from v3 and Fetch
// from v4, the versions of RecordBatch v2, the one format Weir stores.
// Produce v13 and Fetch v13+ name topics by id (the stream's id).
var apis map[int16]api

func init() {
	apis = map[int16]api{
		int16(kmsg.Produce):                 {3, 13, handler(handleProduce)},
		int16(kmsg.Fetch):                   {4, 16, handler(handleFetch)},
		int16(kmsg.ListOffsets):             {1, 6, handler(handleListOffsets)},
		int16(kmsg.Metadata):                {0, 12, handler(handleMetadata)},
		int16(kmsg.OffsetCommit):            {0, 8, handler(handleOffsetCommit)},
		int16(kmsg.OffsetFetch):             {0, 7, handler(handleOffsetFetch)},
		int16(kmsg.FindCoordinator):         {0, 4, handler(handleFindCoordinator)},
		int16(kmsg.JoinGroup):               {0, 9, handler(handleJoinGroup)},
		int16(kmsg.Heartbeat):               {0, 4, handler(handleHeartbeat)},
		int16(kmsg.LeaveGroup):              {0, 5, handler(handleLeaveGroup)},
		int16(kmsg.SyncGroup):               {0, 5, handler(handleSyncGroup)},
		int16(kmsg.DescribeGroups):          {0, 5, handler(handleDescribeGroups)},
		int16(kmsg.ListGroups):              {0, 4, handler(handleListGroups)},
		int16(kmsg.ApiVersions):             {0, 3, handler(handleAPIVersions)},
		int16(kmsg.CreateTopics):            {0, 7, handler(handleCreateTopics)},
		int16(kmsg.DeleteTopics):            {0, 5, handler(handleDeleteTopics)},
		int16(kmsg.InitProducerID):          {0, 4, handler(handleInitProducerID)},
		int16(kmsg.AddPartitionsToTxn):      {0, 3, handler(handleAddPartitionsToTxn)},
		int16(kmsg.AddOffsetsToTxn):         {0, 3, handler(handleAddOffsetsToTxn)},
		int16(kmsg.EndTxn):                  {0, 4, handler(handleEndTxn)},
		int16(kmsg.TxnOffsetCommit):         {0, 3, handler(handleTxnOffsetCommit)},
		int16(kmsg.DescribeConfigs):         {0, 4, handler(handleDescribeConfigs)},
		int16(kmsg.CreatePartitions):        {0, 3, handler(handleCreatePartitions)},
		int16(kmsg.IncrementalAlterConfigs): {0, 1, handler(handleIncrementalAlterConfigs)},
		int16(kmsg.DeleteGroups):            {0, 2, handler(handleDeleteGroups)},
		int16(kmsg.OffsetDelete):            {0, 0, handler(handleOffsetDelete)},
		int16(kmsg.SASLHandshake):           {0, 1, handler(handleSASLHandshake)}, // v0 refused: see handleSASLHandshake
		int16(kmsg.SASLAuthenticate):        {0, 2, handler(handleSASLAuthenticate)},
		// Share groups (KIP-932): v0 was Kafka 4.0's early access, removed in 4.1.
		int16(kmsg.ShareGroupHeartbeat): {1, 1, handler(handleShareGroupHeartbeat)},
		int16(kmsg.ShareGroupDescribe):  {1, 1, handler(handleShareGroupDescribe)},
		int16(kmsg.ShareFetch):          {1, 2, handler(handleShareFetch)},
		int16(kmsg.ShareAcknowledge):    {1, 2, handler(handleShareAcknowledge)},
	}
}

// apiVersionKeys lists the supported keys and ranges, by key.
func apiVersionKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]kmsg.ApiVersionsResponseApiKey, len(keys))
	for i, k := range keys {
		out[i] = kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: apis[k].min, MaxVersion: apis[k].max}
	}
	return out
}
