package rawupstream

import (
	"io"
	"net/http"
	"testing"
)

func TestStartAnswersEveryRequest(t *testing.T) {
	addr := Start(t, Small)
	for i := 0; i < 3; i++ {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(b) != 100 || resp.Header.Get("Server") != "raw" {
			t.Fatalf("response %d %q %v", resp.StatusCode, b, err)
		}
	}
}
