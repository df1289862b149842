// A panel's DOM: <section class="panel" data-endpoint data-state data-params> with a title, a message line, a
// chart and the numbers table (the endpoint's rows, each value exactly as the JSON wrote it).
import { rawValue } from './api.js';

export const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
};

export function createPanel(def) {
  const id = `panel-${def.endpoint}`;
  const title = el('h2', { id: `${id}-title`, text: def.title });
  const section = el('section', {
    class: `panel${def.wide ? ' wide' : ''}`,
    id,
    'data-endpoint': def.endpoint,
    'data-state': 'loading',
    'aria-labelledby': title.id,
    'aria-busy': 'true',
  });
  const header = el('header', { class: 'panel-header' }, title);
  if (def.controls) header.append(def.controls);
  const summary = el('summary', { text: 'Numbers' });
  const table = el(
    'table',
    { class: 'numbers' },
    el('caption', { text: `${def.endpoint} rows` }),
    el('thead'),
    el('tbody'),
  );
  section.append(
    header,
    el('p', { class: 'panel-note', text: def.note ?? '' }),
    el('p', { class: 'panel-message', role: 'status', hidden: '' }),
    el('div', { class: 'panel-body' }),
    el('details', { class: 'panel-numbers' }, summary, el('div', { class: 'table-scroll' }, table)),
  );
  return section;
}

export function setTitle(section, text) {
  section.querySelector('h2').textContent = text;
}

export function setLoading(section, params) {
  section.dataset.state = 'loading';
  section.dataset.params = params;
  section.setAttribute('aria-busy', 'true');
}

export function setMessage(section, text) {
  const message = section.querySelector('.panel-message');
  message.textContent = text;
  message.hidden = !text;
}

// ready | empty | error; the body (chart) shows only with rows.
export function settle(section, state, message = '') {
  section.dataset.state = state;
  section.setAttribute('aria-busy', 'false');
  setMessage(section, state === 'empty' ? 'No data for these filters' : message);
  section.querySelector('.panel-body').hidden = state !== 'ready';
  if (state !== 'ready') fillTable(section, { meta: [], data: [] });
}

export function fillTable(section, body) {
  const table = section.querySelector('table.numbers');
  const columns = body.meta.map((column) => column.name);
  const head = el('tr', {}, ...columns.map((name) => el('th', { scope: 'col', 'data-col': name, text: name })));
  table.tHead.replaceChildren(head);
  const rows = body.data.map((row) =>
    el('tr', {}, ...columns.map((name) => el('td', { 'data-col': name, text: rawValue(row, name) }))),
  );
  table.tBodies[0].replaceChildren(...rows);
  section.querySelector('.panel-numbers summary').textContent = `Numbers (${body.data.length} rows)`;
}

export function panelBody(section) {
  return section.querySelector('.panel-body');
}

// A <select> whose first option is "" (all), then the values seen so far, flat or as [label, values] groups.
export function fillSelect(select, allLabel, groups, current) {
  const option = (value) => el('option', { value, text: value });
  const seen = new Set(groups.flatMap(([, values]) => values));
  const children = [el('option', { value: '', text: allLabel })];
  for (const [label, values] of groups) {
    if (!values.length) continue;
    children.push(...(label ? [el('optgroup', { label }, ...values.map(option))] : values.map(option)));
  }
  // a value from the URL that the data does not (yet) show stays selected
  if (current && !seen.has(current)) children.push(option(current));
  select.replaceChildren(...children);
  select.value = current;
}
