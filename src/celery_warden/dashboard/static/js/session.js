// Who is looking: the session (or open reads) decides which action buttons exist at all.

import { api, ApiError } from './api.js';

const RANK = { read: 1, operate: 2, admin: 3 };

export function can(session, scope) {
  return Boolean(session) && (RANK[session.scope] || 0) >= RANK[scope];
}

export function toLogin() {
  const next = window.location.pathname + window.location.search;
  window.location.assign(`/login?next=${encodeURIComponent(next)}`);
}

// The current session, or null after sending the viewer to the login page.
export async function loadSession() {
  try {
    return await api('/api/v1/session');
  } catch (exc) {
    if (exc instanceof ApiError && (exc.status === 401 || exc.status === 403)) {
      toLogin();
      return null;
    }
    throw exc;
  }
}

export async function logout() {
  try { await api('/api/v1/session', { method: 'DELETE' }); } catch { /* already gone */ }
  window.location.assign('/login');
}
