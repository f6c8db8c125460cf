// Package events defines the one envelope every idemgate topic carries
// (CloudEvents 1.0, Kafka protocol binding, binary mode), the topics, the
// event bodies and the producer that emits them.
package events

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Envelope is a CloudEvent in binary mode: the attributes travel as
// ce_* record headers and the data is the record value.
type Envelope struct {
	ID          string // ce_id: unique per event; consumers deduplicate on it
	Type        string // ce_type
	Source      string // ce_source
	Subject     string // ce_subject: the operation, e.g. payments.create
	Time        time.Time
	ContentType string // content-type of Data
	Data        []byte
	// TraceParent is the W3C trace context the record carries (header
	// traceparent), read when decoding. It is written by the producer's
	// tracing hook (kotel), from the context the record is produced with,
	// so that the span that sent it parents the one that applies it.
	TraceParent string
}

// Header names of the CloudEvents Kafka binding.
const (
	hID          = "ce_id"
	hType        = "ce_type"
	hSource      = "ce_source"
	hSpecVersion = "ce_specversion"
	hSubject     = "ce_subject"
	hTime        = "ce_time"
	hContentType = "content-type"
	hTraceParent = "traceparent"
)

// Record builds the Kafka record of e on topic with the given key.
func (e Envelope) Record(topic string, key []byte) *kgo.Record {
	hs := []kgo.RecordHeader{
		{Key: hSpecVersion, Value: []byte("1.0")},
		{Key: hID, Value: []byte(e.ID)},
		{Key: hType, Value: []byte(e.Type)},
		{Key: hSource, Value: []byte(e.Source)},
		{Key: hContentType, Value: []byte(e.ContentType)},
	}
	if e.Subject != "" {
		hs = append(hs, kgo.RecordHeader{Key: hSubject, Value: []byte(e.Subject)})
	}
	if !e.Time.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: hTime, Value: []byte(e.Time.UTC().Format(time.RFC3339Nano))})
	}
	return &kgo.Record{Topic: topic, Key: key, Value: e.Data, Headers: hs}
}

// ErrNotCloudEvent reports a record that lacks the required attributes.
var ErrNotCloudEvent = errors.New("events: record is not a CloudEvent in binary mode")

// Decode reads the envelope of a record.
func Decode(r *kgo.Record) (Envelope, error) {
	var e Envelope
	var spec string
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case hSpecVersion:
			spec = v
		case hID:
			e.ID = v
		case hType:
			e.Type = v
		case hSource:
			e.Source = v
		case hSubject:
			e.Subject = v
		case hContentType:
			e.ContentType = v
		case hTraceParent:
			e.TraceParent = v
		case hTime:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return e, fmt.Errorf("%w: bad ce_time %q", ErrNotCloudEvent, v)
			}
			e.Time = t
		}
	}
	if spec != "1.0" || e.ID == "" || e.Type == "" || e.Source == "" {
		return e, fmt.Errorf("%w (specversion %q, id %q, type %q, source %q)", ErrNotCloudEvent, spec, e.ID, e.Type, e.Source)
	}
	e.Data = r.Value
	return e, nil
}
