package console

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Stats is what the server measures for the overview. Counters are totals
// since the server started; the console turns them into rates.
type Stats interface {
	Sample() Sample
}

// Sample is one reading of the server's figures.
type Sample struct {
	RecordsIn  float64 // records appended to any stream, by any protocol
	BytesIn    float64 // bytes of log appended
	RecordsOut float64 // records delivered to consumers
	BytesOut   float64 // their bytes
	// Open connections per listener ("kafka", "amqp", "mqtt", "http", …).
	Connections map[string]int
	DiskUsed    int64 // bytes of stream data in the data directory
	DiskFree    int64 // bytes free on its file system; -1: unknown
	FSyncCount  float64
	FSyncSecs   float64 // total time of the FSyncCount flushes
}

// Point is what the live feed sends each interval: rates over the last
// interval, and the gauges as read.
type Point struct {
	Time          time.Time      `json:"time"`
	RecordsInPS   float64        `json:"recordsInPerSec"`
	BytesInPS     float64        `json:"bytesInPerSec"`
	RecordsOutPS  float64        `json:"recordsOutPerSec"`
	BytesOutPS    float64        `json:"bytesOutPerSec"`
	Connections   map[string]int `json:"connections"`
	DiskUsed      int64          `json:"diskUsed"`
	DiskFree      int64          `json:"diskFree"`
	FSyncs        float64        `json:"fsyncs"`        // flushes during the interval
	FSyncMeanSecs float64        `json:"fsyncMeanSecs"` // their mean time; 0 without any
}

// historyLength is how many points a new live feed starts with, so that
// the charts are not empty when the page opens.
const historyLength = 300

// point computes the point of cur, taken at now, after prev taken at then.
func point(prev, cur Sample, then, now time.Time) Point {
	p := Point{Time: now, Connections: cur.Connections, DiskUsed: cur.DiskUsed, DiskFree: cur.DiskFree}
	secs := now.Sub(then).Seconds()
	if secs <= 0 {
		return p
	}
	// A counter that went down (a stream deleted, retention) counts as 0.
	rate := func(a, b float64) float64 { return max(b-a, 0) / secs }
	p.RecordsInPS = rate(prev.RecordsIn, cur.RecordsIn)
	p.BytesInPS = rate(prev.BytesIn, cur.BytesIn)
	p.RecordsOutPS = rate(prev.RecordsOut, cur.RecordsOut)
	p.BytesOutPS = rate(prev.BytesOut, cur.BytesOut)
	if n := cur.FSyncCount - prev.FSyncCount; n > 0 {
		p.FSyncs = n
		p.FSyncMeanSecs = max(cur.FSyncSecs-prev.FSyncSecs, 0) / n
	}
	return p
}

// hub samples the Stats while at least one live feed is open and sends
// each point to every feed. It keeps the last points for new feeds.
type hub struct {
	stats    Stats
	interval time.Duration
	logger   *slog.Logger

	mu      sync.Mutex
	feeds   map[chan Point]struct{}
	history []Point
	running bool
	stop    chan struct{} // closed by close
	closed  bool
}

func newHub(stats Stats, interval time.Duration, logger *slog.Logger) *hub {
	return &hub{stats: stats, interval: interval, logger: logger, feeds: map[chan Point]struct{}{}, stop: make(chan struct{})}
}

// subscribe returns a feed and the history so far; ok is false once the
// hub is closed.
func (h *hub) subscribe() (feed chan Point, history []Point, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, false
	}
	feed = make(chan Point, 16)
	h.feeds[feed] = struct{}{}
	if !h.running {
		h.running = true
		go h.run()
	}
	return feed, append([]Point(nil), h.history...), true
}

func (h *hub) unsubscribe(feed chan Point) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.feeds, feed)
}

// run samples every interval until no feed is left or the hub closes.
func (h *hub) run() {
	ticker := time.NewTicker(h.interval)
	defer ticker.Stop()
	prev, then := h.stats.Sample(), time.Now()
	for {
		select {
		case <-h.stop:
			return
		case <-ticker.C:
		}
		cur, now := h.stats.Sample(), time.Now()
		p := point(prev, cur, then, now)
		prev, then = cur, now

		h.mu.Lock()
		if len(h.feeds) == 0 {
			h.running = false // the next subscribe starts a new run
			h.mu.Unlock()
			return
		}
		h.history = append(h.history, p)
		if len(h.history) > historyLength {
			h.history = append(h.history[:0], h.history[len(h.history)-historyLength:]...)
		}
		for feed := range h.feeds {
			select {
			case feed <- p:
			default: // a feed that does not keep up misses points
			}
		}
		h.mu.Unlock()
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.stop)
	}
}

// serveLive is the live feed: server-sent events, a "history" event with
// the last points first and then a "point" event each interval. Every page
// uses the points as its clock to refresh what it shows.
func (c *Console) serveLive(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	feed, history, ok := c.live.subscribe()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down")
		return
	}
	defer c.live.unsubscribe(feed)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		data, err := json.Marshal(v)
		if err != nil {
			c.logger.Error("console live feed: encode", "err", err)
			return false
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if history == nil {
		history = []Point{}
	}
	if !send("history", history) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.live.stop:
			return
		case p := <-feed:
			if !send("point", p) {
				return
			}
		}
	}
}

// writeError answers a console endpoint's failure as JSON.
func writeError(w http.ResponseWriter, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message}) // the client may have gone
}
