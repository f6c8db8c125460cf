// Command orders is a small upstream service for the gateway demo: an
// orders API in plain net/http, as a team might already run it, that
// honours Idempotency-Key. The answer to a key is recorded (appended to
// a file and synced) before it is sent, and a request with a known key
// gets that answer again instead of a second order, so idemgate's retries
// of a command, under its operation id, create one order.
//
//	go run ./examples/orders --addr 127.0.0.1:9000 --data /tmp/orders.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

// entry is one recorded answer: the line appended to the data file.
type entry struct {
	Key    string          `json:"key"`
	Order  string          `json:"order"`
	Action string          `json:"action"` // create, cancel
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

type service struct {
	mu      sync.Mutex
	file    *os.File
	answers map[string]entry  // by Idempotency-Key
	orders  map[string]string // order id -> state
}

func open(path string) (*service, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s := &service{file: f, answers: map[string]entry{}, orders: map[string]string{}}
	r := bufio.NewReader(f)
	var good int64 // bytes of whole lines
	for {
		line, err := r.ReadBytes('\n')
		var e entry
		if err != nil || json.Unmarshal(line, &e) != nil {
			break
		}
		s.apply(e)
		good += int64(len(line))
	}
	// A line cut short (a crash, a full disk) was never answered: drop it,
	// so that the next answers are not appended to a fragment.
	if err := f.Truncate(good); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *service) apply(e entry) {
	s.answers[e.Key] = e
	switch {
	case e.Action == "create" && e.Status == 201:
		s.orders[e.Order] = "open"
	case e.Action == "cancel" && e.Status == 200:
		s.orders[e.Order] = "cancelled"
	}
}

// handle answers a POST: a known key gets its recorded answer; a new one
// is decided by decide, recorded durably, then answered.
func (s *service) handle(action string, decide func(order string) (string, int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			http.Error(w, `{"error":"Idempotency-Key required"}`, http.StatusBadRequest)
			return
		}
		if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<16)); err != nil {
			http.Error(w, `{"error":"body too large"}`, http.StatusRequestEntityTooLarge)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		e, known := s.answers[key]
		if !known {
			order, status, body := decide(r.PathValue("id"))
			b, _ := json.Marshal(body)
			e = entry{Key: key, Order: order, Action: action, Status: status, Body: b}
			line, _ := json.Marshal(e)
			if _, err := s.file.Write(append(line, '\n')); err != nil || s.file.Sync() != nil {
				http.Error(w, `{"error":"storage"}`, http.StatusInternalServerError)
				return
			}
			s.apply(e)
		}
		w.Header().Set("Content-Type", "application/json")
		if e.Status < 300 {
			w.Header().Set("Location", "/orders/"+e.Order)
		}
		w.WriteHeader(e.Status)
		_, _ = w.Write(e.Body)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	data := flag.String("data", "orders.jsonl", "file of recorded answers")
	flag.Parse()
	s, err := open(*data)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.handle("create", func(string) (string, int, any) {
		id := fmt.Sprintf("ord-%d", len(s.orders)+1)
		return id, http.StatusCreated, map[string]string{"id": id, "state": "open"}
	}))
	mux.HandleFunc("POST /orders/{id}/cancel", s.handle("cancel", func(id string) (string, int, any) {
		switch s.orders[id] {
		case "":
			return id, http.StatusNotFound, map[string]string{"error": "no order " + id}
		case "cancelled":
			return id, http.StatusConflict, map[string]string{"error": "order " + id + " is already cancelled"}
		}
		return id, http.StatusOK, map[string]string{"id": id, "state": "cancelled"}
	}))
	// GET /orders lists every recorded answer, for counting effects.
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var list []entry
		for _, e := range s.answers {
			list = append(list, e)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	})
	// Listening first, it prints the address it has (port 0 asks the
	// kernel for one: a supervisor learns it here).
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
	fmt.Printf("orders: listening on http://%s, data in %s\n", l.Addr(), *data)
	if err := http.Serve(l, mux); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "orders:", strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
}
