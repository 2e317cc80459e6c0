// The one door to the server: the public JSON API, authenticated by the HttpOnly session cookie
// (the browser adds it, and Origin / Sec-Fetch-Site for the server's same-origin check).

export class ApiError extends Error {
  constructor(status, code, message, path) {
    super(message);
    this.path = path;
    this.status = status;
    this.code = code;
  }
}

export function url(path, params) {
  const u = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== '' && value !== null && value !== undefined) u.searchParams.set(key, value);
  }
  return u;
}

export async function api(path, { method = 'GET', params, body } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, params), init);
  } catch (exc) {
    throw new ApiError(0, 'unreachable', `The server did not answer (${exc.message}).`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(response.status, err.code || `http_${response.status}`,
      err.message || response.statusText || `HTTP ${response.status}`, path);
  }
  return data;
}

export const enc = encodeURIComponent;
