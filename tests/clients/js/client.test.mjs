// The OpenSearch JavaScript client (@opensearch-project/opensearch) pointed at the real crossrank
// proxy in front of the real node, each answer compared with the same call made directly.
// Run by tests/integration/test_js_client.py, which starts both and sets:
//   CROSSRANK_URL, OPENSEARCH_URL, CROSSRANK_ADMIN_TOKEN
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, errors } from '@opensearch-project/opensearch';

const proxyUrl = process.env.CROSSRANK_URL;
const directUrl = process.env.OPENSEARCH_URL;
const token = process.env.CROSSRANK_ADMIN_TOKEN;
const INDEX = 't-js-client';
const POLICY = 't-js-client';

const proxy = new Client({ node: proxyUrl });
const direct = new Client({ node: directUrl });
const gzipped = new Client({ node: proxyUrl, compression: 'gzip', suggestCompression: true });

const docs = Array.from({ length: 40 }, (_, i) => ({
  id: `d${i}`,
  title: i % 3 === 0 ? `cancer cells study ${i}` : `bread and baking note ${i}`,
  text: i % 3 === 0 ? 'tumour growth in mice driven by cancer cells' : `a recipe with flour ${i}`,
}));
const query = { match: { text: 'cancer cells tumour growth' } };

const ids = (response) => response.body.hits.hits.map((hit) => hit._id);

async function admin(method, path, body) {
  const response = await fetch(`${proxyUrl}/_crossrank/${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-crossrank-admin-token': token },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response;
}

before(async () => {
  await direct.indices.delete({ index: INDEX, ignore_unavailable: true });
  await proxy.indices.create({
    index: INDEX,
    body: { settings: { number_of_shards: 1, number_of_replicas: 0 } },
  });
  const result = await proxy.helpers.bulk({
    datasource: docs,
    onDocument: (doc) => ({ index: { _index: INDEX, _id: doc.id } }),
    refreshOnCompletion: INDEX,
  });
  assert.equal(result.successful, docs.length);
  const put = await admin('PUT', `policies/${POLICY}`, {
    indices: [INDEX], text_fields: ['title', 'text'], window: 20, score_mode: 'replace',
  });
  assert.ok(put.ok, await put.text());
  // the proxy re-reads its policies every 0.5 s in the tests
  for (let i = 0; i < 50; i++) {
    const r = await proxy.search({ index: INDEX, body: { query, size: 5 } });
    if (r.headers['x-crossrank-status'] === 'reranked') break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

after(async () => {
  await admin('DELETE', `policies/${POLICY}`);
  await direct.indices.delete({ index: INDEX, ignore_unavailable: true });
  await Promise.all([proxy.close(), direct.close(), gzipped.close()]);
});

test('the bulk helper wrote every document through the proxy', async () => {
  const count = await direct.count({ index: INDEX });
  assert.equal(count.body.count, docs.length);
});

test('a search with a policy is reranked, within the first-stage window', async () => {
  const reranked = await proxy.search({ index: INDEX, body: { query, size: 10 } });
  assert.equal(reranked.statusCode, 200);
  assert.equal(reranked.headers['x-crossrank-status'], 'reranked');
  assert.equal(reranked.headers['x-crossrank-arm'], 'rerank');
  assert.match(reranked.headers['server-timing'], /score/);
  const window = await direct.search({ index: INDEX, body: { query, size: 20 } });
  const inWindow = new Set(ids(window));
  assert.ok(ids(reranked).every((id) => inWindow.has(id)));
  assert.equal(reranked.body.hits.total.value, window.body.hits.total.value);
});

test('rerank=false is exactly OpenSearch\'s answer', async () => {
  // the client's own search() does not know crossrank's parameter: send it as a querystring
  const viaQuerystring = await proxy.transport.request({
    method: 'POST', path: `/${INDEX}/_search`, querystring: { rerank: 'false' },
    body: { query, size: 10 },
  });
  const opensearch = await direct.search({ index: INDEX, body: { query, size: 10 } });
  assert.equal(viaQuerystring.headers['x-crossrank-status'], 'bypassed');
  assert.deepEqual(ids(viaQuerystring), ids(opensearch));
});

test('a search on an index without a policy passes through', async () => {
  const a = await proxy.search({ index: '.crossrank-none-*', body: { query, size: 3 } });
  const b = await direct.search({ index: '.crossrank-none-*', body: { query, size: 3 } });
  assert.deepEqual(a.body.hits, b.body.hits);
});

test('msearch answers each search, reranked where the policy says', async () => {
  const body = [{ index: INDEX }, { query, size: 5 }, { index: INDEX }, { query: { match_all: {} }, size: 3, sort: ['_doc'] }];
  const response = await proxy.msearch({ body });
  assert.equal(response.body.responses.length, 2);
  const sorted = await direct.search({ index: INDEX, body: { query: { match_all: {} }, size: 3, sort: ['_doc'] } });
  assert.deepEqual(ids({ body: response.body.responses[1] }), ids(sorted));
  assert.equal(response.body.responses[0].hits.hits.length, 5);
});

test('scroll pages through as OpenSearch does', async () => {
  const first = await proxy.search({ index: INDEX, scroll: '1m', body: { query: { match_all: {} }, size: 15, sort: ['_doc'] } });
  assert.equal(first.headers['x-crossrank-status'], 'bypassed');
  const second = await proxy.scroll({ body: { scroll_id: first.body._scroll_id, scroll: '1m' } });
  const all = await direct.search({ index: INDEX, body: { query: { match_all: {} }, size: 30, sort: ['_doc'] } });
  assert.deepEqual([...ids(first), ...ids(second)], ids(all));
  await proxy.clearScroll({ body: { scroll_id: second.body._scroll_id } });
});

test('a point-in-time search is OpenSearch\'s', async () => {
  const pit = await proxy.createPit({ index: INDEX, keep_alive: '1m' });
  const pitId = pit.body.pit_id;
  assert.ok(pitId);
  const body = { pit: { id: pitId, keep_alive: '1m' }, size: 5, sort: [{ _doc: 'asc' }], query: { match_all: {} } };
  const a = await proxy.search({ body });
  const b = await direct.search({ body });
  assert.deepEqual(ids(a), ids(b));
  const deleted = await proxy.deletePit({ body: { pit_id: [pitId] } });
  assert.equal(deleted.statusCode, 200);
});

test('count is OpenSearch\'s', async () => {
  const a = await proxy.count({ index: INDEX, body: { query } });
  const b = await direct.count({ index: INDEX, body: { query } });
  assert.equal(a.body.count, b.body.count);
});

test('a missing index raises the same error class, status and type', async () => {
  const call = (client) => client.search({ index: 'no-such-index-js', body: { query } }).then(
    () => assert.fail('expected an error'), (e) => e);
  const [viaProxy, viaDirect] = await Promise.all([call(proxy), call(direct)]);
  assert.ok(viaProxy instanceof errors.ResponseError);
  assert.ok(viaDirect instanceof errors.ResponseError);
  assert.equal(viaProxy.statusCode, viaDirect.statusCode);
  assert.equal(viaProxy.statusCode, 404);
  assert.equal(viaProxy.body.error.type, viaDirect.body.error.type);
  assert.equal(viaProxy.body.error.type, 'index_not_found_exception');
});

test('compressed requests and responses', async () => {
  const response = await gzipped.search({ index: INDEX, body: { query, size: 5 } });
  assert.equal(response.headers['x-crossrank-status'], 'reranked');
  const plain = await proxy.search({ index: INDEX, body: { query, size: 5 } });
  assert.deepEqual(ids(response), ids(plain));
  const written = await gzipped.index({ index: INDEX, id: 'gz', body: { title: 'gzip', text: 'compressed body' }, refresh: true });
  assert.equal(written.body.result, 'created');
  const read = await direct.get({ index: INDEX, id: 'gz' });
  assert.equal(read.body._source.text, 'compressed body');
  await direct.delete({ index: INDEX, id: 'gz', refresh: true });
});

test('a request the client aborts mid-way leaves the proxy serving', async () => {
  const request = proxy.search({ index: INDEX, body: { query, size: 10 } });
  request.abort();
  await assert.rejects(request, errors.RequestAbortedError);
  const next = await proxy.search({ index: INDEX, body: { query, size: 10 } });
  assert.equal(next.headers['x-crossrank-status'], 'reranked');
});
