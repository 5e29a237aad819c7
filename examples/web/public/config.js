// Where the API is: the gateway's origin, and optionally the usage function's own URL.
// Empty apiBase means this page's own origin. A deployment replaces this file (no
// rebuild); `?api=https://…` overrides it for one visit.
window.REEL_CONFIG = {
  apiBase: "",
  usageFunctionUrl: "",
};
