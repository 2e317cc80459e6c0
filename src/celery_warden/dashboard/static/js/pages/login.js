// Sign in: the token is posted once and exchanged for an HttpOnly SameSite=Strict cookie.

import { api } from '../api.js';
import { $ } from '../dom.js';
import { showError } from '../ui.js';

function nextPath() {
  const next = new URLSearchParams(window.location.search).get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function init() {
  const form = $('#login-form');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = $('#token').value.trim();
    if (!token) return;
    form.querySelector('button').disabled = true;
    try {
      await api('/api/v1/session', { method: 'POST', body: { token } });
      window.location.assign(nextPath());
    } catch (exc) {
      $('#token').value = '';
      showError(exc);
      form.querySelector('button').disabled = false;
    }
  });
}
