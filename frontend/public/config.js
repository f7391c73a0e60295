// Where the API lives. The SPA server (python -m tradedesk.spa) answers this path itself with the API URL it
// was given; this file is the fallback for `vite` during development.
window.tradedeskConfig = window.tradedeskConfig || { apiUrl: location.protocol + "//" + location.hostname + ":8000" };
