package mqtt

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocketHandler serves MQTT over WebSocket (MQTT 3.1.1 section 6, MQTT 5
// section 6): the subprotocol "mqtt" (or 3.1's "mqttv3.1"), binary
// messages carrying the packet stream, split across or combined in
// messages in any way. Browsers from any origin may connect, as to the TCP
// listener, and authenticate as there (CONNECT's credentials, or over WSS
// the client certificate).
func (s *Server) WebSocketHandler() http.Handler {
	up := websocket.Upgrader{
		Subprotocols:    []string{"mqtt", "mqttv3.1"},
		CheckOrigin:     func(*http.Request) bool { return true },
		ReadBufferSize:  16 << 10,
		WriteBufferSize: 16 << 10,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			http.Error(w, "MQTT over WebSocket: upgrade required", http.StatusUpgradeRequired)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader answered
		}
		if ws.Subprotocol() == "" {
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError, "subprotocol mqtt required"), time.Now().Add(time.Second))
			ws.Close()
			return
		}
		ws.SetReadLimit(int64(s.cfg.MaxPacketSize) + 8)
		s.ServeConn(&wsConn{ws: ws})
	})
}

// wsConn is a WebSocket connection as the byte stream a conn reads.
type wsConn struct {
	ws  *websocket.Conn
	r   io.Reader // the message being read
	wmu sync.Mutex
}

var errTextMessage = errors.New("mqtt: text WebSocket message")

func (c *wsConn) Read(b []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextMessage
			}
			c.r = r
		}
		n, err := c.r.Read(b)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// NetConn is the connection under the WebSocket: over WSS a *tls.Conn,
// whose client certificate can name the user (auth.ConnectionState).
func (c *wsConn) NetConn() net.Conn { return c.ws.NetConn() }

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}
