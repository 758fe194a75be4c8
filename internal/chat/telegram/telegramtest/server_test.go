package telegramtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
)

const token = "42:fake"

func call(t *testing.T, s *telegramtest.Server, path, contentType, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(s.URL+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestWireFormat(t *testing.T) {
	s := telegramtest.Start(t, token)
	if code, body := call(t, s, "/botWRONG/getMe", "", ""); code != 401 || body != `{"description":"Unauthorized","error_code":401,"ok":false}` {
		t.Fatalf("wrong token: %d %s", code, body)
	}
	// JSON and urlencoded bodies work like multipart; reply_markup is a JSON string either way.
	if code, body := call(t, s, "/bot"+token+"/sendMessage", "application/json",
		`{"chat_id":5,"text":"<b>hi</b> &amp; bye","parse_mode":"HTML","reply_markup":{"inline_keyboard":[[{"text":"A","callback_data":"a"}]]}}`); code != 200 ||
		!strings.Contains(body, `"text":"hi \u0026 bye"`) {
		t.Fatalf("JSON sendMessage: %d %s", code, body)
	}
	if code, _ := call(t, s, "/bot"+token+"/editMessageText", "application/x-www-form-urlencoded",
		url.Values{"chat_id": {"5"}, "message_id": {"1"}, "text": {"<b>hi</b> &amp; bye"}, "parse_mode": {"HTML"},
			"reply_markup": {`{"inline_keyboard":[[{"callback_data":"a","text":"A"}]]}`}}.Encode()); code != 400 {
		t.Fatalf("identical edit (keys in another order) answered %d, want 400 not modified", code)
	}
	if got := s.ButtonData(5, 1, "A"); got != "a" {
		t.Fatalf("button data %q", got)
	}
	refusals := map[string]string{
		`{"chat_id":5,"text":"<script>x</script>","parse_mode":"HTML"}`: "unsupported start tag",
		`{"chat_id":5,"text":"a & b","parse_mode":"HTML"}`:              "entity",
		`{"chat_id":5,"text":"<b>open","parse_mode":"HTML"}`:            "end tag",
		`{"chat_id":5,"text":"   "}`:                                    "message text is empty",
		`{"chat_id":5,"text":"` + strings.Repeat("x", 4097) + `"}`:      "message is too long",
		`{"chat_id":5,"text":"k","reply_markup":{"inline_keyboard":[[{"text":"A","callback_data":"a","copy_text":{"text":""}}]]}}`:       "BUTTON_COPY_TEXT_INVALID",
		`{"chat_id":5,"text":"k","reply_markup":{"inline_keyboard":[[{"text":"A","callback_data":"` + strings.Repeat("d", 65) + `"}]]}}`: "BUTTON_DATA_INVALID",
		`{"chat_id":"general","text":"k"}`: "chat not found",
	}
	for body, want := range refusals {
		code, got := call(t, s, "/bot"+token+"/sendMessage", "application/json", body)
		if code != 400 || !strings.Contains(got, want) {
			t.Errorf("%.60s: %d %s, want %q", body, code, got, want)
		}
	}
}

func TestGetUpdatesLongPollsAndHonoursOffsetAndWebhooks(t *testing.T) {
	s := telegramtest.Start(t, token)
	decode := func(code int, body string) []map[string]any {
		t.Helper()
		var r struct {
			Result []map[string]any `json:"result"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("getUpdates: %d %s", code, body)
		}
		return r.Result
	}
	updates := func(offset string) []map[string]any {
		t.Helper()
		return decode(call(t, s, "/bot"+token+"/getUpdates", "application/x-www-form-urlencoded", "timeout=5&offset="+offset))
	}
	type answer struct {
		code int
		body string
	}
	polled := make(chan answer, 1)
	go func() {
		resp, err := http.Post(s.URL+"/bot"+token+"/getUpdates", "application/x-www-form-urlencoded", strings.NewReader("timeout=5"))
		if err != nil {
			polled <- answer{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		polled <- answer{resp.StatusCode, string(b)}
	}()
	s.Wait("the poll to wait", func() bool { return s.Polling() == 1 })
	s.Push(map[string]any{"message": map[string]any{"text": "hi"}})
	a := <-polled
	if got := decode(a.code, a.body); len(got) != 1 || got[0]["update_id"] != float64(1) {
		t.Fatalf("long poll got %v", got)
	}
	s.Push(map[string]any{"update_id": 2})
	if got := updates("1"); len(got) != 2 {
		t.Fatalf("unconfirmed updates are sent again: %v", got)
	}
	s.Redeliver(map[string]any{"update_id": 1})
	if got := updates("3"); len(got) != 1 || got[0]["update_id"] != float64(1) {
		t.Fatalf("offset 3 confirms 1 and 2, but a redelivery still comes: %v", got)
	}
	s.SetWebhook("https://x.example/hook", "sec")
	if code, body := call(t, s, "/bot"+token+"/getUpdates", "", ""); code != 409 || !strings.Contains(body, "webhook is active") {
		t.Fatalf("getUpdates with a webhook: %d %s", code, body)
	}
}
