package console

import (
	"cmp"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// Groups is what the lag history samples; *broker.Broker implements it.
type Groups interface {
	ListGroups() ([]string, error)
	DescribeGroup(group string) (broker.GroupInfo, error)
}

// Lag history defaults: a point every 10 s, 360 points (an hour) per
// partition, at most 1,024 partitions of groups followed: at most 5.9 MB.
const (
	defaultLagInterval = 10 * time.Second
	defaultLagPoints   = 360
	defaultLagSeries   = 1024
)

// lagPoint is one sample of a partition's lag; Time in milliseconds since
// the epoch, as the page's charts take it.
type lagPoint struct {
	Time int64
	Lag  int64
}

// MarshalJSON writes a point as [time, lag], the charts' shape, half the
// size of an object.
func (p lagPoint) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 32)
	b = append(b, '[')
	b = strconv.AppendInt(b, p.Time, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, p.Lag, 10)
	return append(b, ']'), nil
}

// lagKey names a partition of a group.
type lagKey struct {
	group, stream string
	partition     int32
}

// lagRing is a partition's last points, oldest first once read: a ring of
// at most capacity points, grown as points come.
type lagRing struct {
	points []lagPoint
	next   int // where the next point goes once the ring is full
}

func (r *lagRing) add(p lagPoint, capacity int) {
	if len(r.points) < capacity {
		r.points = append(r.points, p)
		return
	}
	r.points[r.next] = p
	r.next = (r.next + 1) % capacity
}

// ordered returns a copy of the points, oldest first.
func (r *lagRing) ordered() []lagPoint {
	out := make([]lagPoint, 0, len(r.points))
	out = append(out, r.points[r.next:]...)
	return append(out, r.points[:r.next]...)
}

// lagHistory samples the lag of every group's partitions every interval
// and keeps each partition's last points, so that the groups page shows
// lag over time from the moment it opens, and after a reload. A partition
// the group no longer has an offset for (a group deleted, its offsets
// expired, a stream deleted) is dropped at the next sample; beyond
// maxSeries partitions, new ones are not followed until others go.
type lagHistory struct {
	groups    Groups
	interval  time.Duration
	points    int
	maxSeries int
	logger    *slog.Logger

	mu      sync.Mutex
	series  map[lagKey]*lagRing
	skipped int // partitions not followed at the last sample (maxSeries)

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newLagHistory(groups Groups, interval time.Duration, points, maxSeries int, logger *slog.Logger) *lagHistory {
	return &lagHistory{
		groups: groups, interval: interval, points: points, maxSeries: maxSeries, logger: logger,
		series: make(map[lagKey]*lagRing), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// run samples at once, then every interval until close.
func (h *lagHistory) run() {
	defer close(h.done)
	ticker := time.NewTicker(h.interval)
	defer ticker.Stop()
	for {
		h.sample(time.Now())
		select {
		case <-h.stop:
			return
		case <-ticker.C:
		}
	}
}

// close stops the sampler and waits for it; the server calls it from two
// goroutines at shutdown (http.Server.RegisterOnShutdown and its components).
func (h *lagHistory) close() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
}

// sample reads every group's lag, taken at now.
func (h *lagHistory) sample(now time.Time) {
	names, err := h.groups.ListGroups()
	if err != nil {
		h.logger.Warn("console: sampling group lag", "err", err)
		return
	}
	type reading struct {
		key lagKey
		lag int64
	}
	var readings []reading
	unread := make(map[string]bool) // groups whose history stays as it is
	for _, g := range names {
		info, err := h.groups.DescribeGroup(g)
		if errors.Is(err, broker.ErrGroupNotFound) {
			continue // gone since it was listed
		}
		if err != nil {
			unread[g] = true
			continue
		}
		for _, o := range info.Offsets {
			readings = append(readings, reading{lagKey{g, o.Stream, o.Partition}, o.Lag})
		}
	}
	at := now.UnixMilli()
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[lagKey]bool, len(readings))
	skipped := 0
	for _, r := range readings {
		seen[r.key] = true
		ring := h.series[r.key]
		if ring == nil {
			if len(h.series) >= h.maxSeries {
				skipped++
				continue
			}
			ring = new(lagRing)
			h.series[r.key] = ring
		}
		ring.add(lagPoint{Time: at, Lag: r.lag}, h.points)
	}
	for k := range h.series {
		if !seen[k] && !unread[k.group] {
			delete(h.series, k)
		}
	}
	if skipped > 0 && h.skipped == 0 {
		h.logger.Warn("console: too many group partitions to keep the lag history of all", "followed", len(h.series), "skipped", skipped)
	}
	h.skipped = skipped
}

// lagSeries is one partition's history as the endpoint answers it.
type lagSeries struct {
	Stream    string     `json:"stream"`
	Partition int32      `json:"partition"`
	Points    []lagPoint `json:"points"`
}

type lagGroup struct {
	Group  string      `json:"group"`
	Series []lagSeries `json:"series"`
}

type lagAnswer struct {
	IntervalMillis int64      `json:"intervalMillis"`
	Groups         []lagGroup `json:"groups"`
	// Skipped is how many partitions had no room in the history at the
	// last sample.
	Skipped int `json:"skipped"`
}

// read returns the history of the groups visible says may be seen (of
// group alone when it is not ""), by group, stream and partition.
func (h *lagHistory) read(group string, visible func(string) bool) lagAnswer {
	h.mu.Lock()
	byGroup := make(map[string][]lagSeries)
	for k, ring := range h.series {
		if group != "" && k.group != group || !visible(k.group) {
			continue
		}
		byGroup[k.group] = append(byGroup[k.group], lagSeries{Stream: k.stream, Partition: k.partition, Points: ring.ordered()})
	}
	skipped := h.skipped
	h.mu.Unlock()
	ans := lagAnswer{IntervalMillis: h.interval.Milliseconds(), Groups: []lagGroup{}, Skipped: skipped}
	for g, series := range byGroup {
		slices.SortFunc(series, func(a, b lagSeries) int {
			return cmp.Or(cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Partition, b.Partition))
		})
		ans.Groups = append(ans.Groups, lagGroup{Group: g, Series: series})
	}
	slices.SortFunc(ans.Groups, func(a, b lagGroup) int { return cmp.Compare(a.Group, b.Group) })
	return ans
}

// serveLag answers GET /console/api/lag[?group=G]: the lag history of
// every group the caller may see (or of G), each partition's points as
// [milliseconds since the epoch, lag], oldest first.
func (c *Console) serveLag(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ans := c.lag.read(r.URL.Query().Get("group"), func(g string) bool {
		return broker.Visible(ctx, auth.ResourceGroup, g)
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(ans) // the client may have gone
}
