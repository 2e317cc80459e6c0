// Entry point of every page: who is looking, live updates, then the page's own module.

import { $ } from './dom.js';
import * as live from './live.js';
import { loadSession, logout } from './session.js';
import { showError } from './ui.js';

function navToggle() {
  const button = $('#nav-toggle');
  const nav = $('#nav');
  if (!button || !nav) return;
  button.addEventListener('click', () => {
    const open = nav.classList.toggle('open');
    button.setAttribute('aria-expanded', String(open));
  });
}

async function boot() {
  const body = document.body;
  const page = body.dataset.page;
  navToggle();
  if (page === 'login') {
    (await import('./pages/login.js')).init();
    return;
  }
  // The session check and the page module's import run side by side.
  const [session, module] = await Promise.all([loadSession(), import(`./pages/${page}.js`)]);
  if (!session) return;
  body.dataset.scope = session.scope;
  $('#who-name').textContent = session.via === 'open' ? 'read-only (open)' : `${session.name} · ${session.scope}`;
  const signOut = $('#logout');
  if (session.via === 'cookie') {
    signOut.hidden = false;
    signOut.addEventListener('click', logout);
  } else if (session.via === 'open') {
    signOut.hidden = false;
    signOut.textContent = 'Sign in';
    signOut.addEventListener('click', () => window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname + window.location.search)}`));
  }
  await module.init({ session, id: body.dataset.id, live });
  // First render done (with its data): what bench/dashboard_pages.py measures.
  performance.mark('warden:rendered');
  body.dataset.rendered = 'true';
  live.start();
}

boot().catch((exc) => showError(exc));
