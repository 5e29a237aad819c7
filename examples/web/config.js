// Where the API is. `make rehearse` serves a copy of this directory with its own config.js;
// for a deployment, edit these two URLs (or open the page with ?api=https://<gateway>).
window.REEL_CONFIG = {
  apiBase: "",
  usageFunctionUrl: "",
};
