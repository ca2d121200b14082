package dev.crossrank.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import jakarta.json.Json;
import jakarta.json.JsonObject;
import jakarta.json.JsonReader;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.reactor.IOReactorConfig;
import org.apache.hc.core5.util.TimeValue;
import org.apache.hc.core5.util.Timeout;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.opensearch.client.json.JsonData;
import org.opensearch.client.opensearch.OpenSearchClient;
import org.opensearch.client.opensearch._types.FieldValue;
import org.opensearch.client.opensearch._types.OpenSearchException;
import org.opensearch.client.opensearch._types.Refresh;
import org.opensearch.client.opensearch._types.SortOrder;
import org.opensearch.client.opensearch._types.query_dsl.Query;
import org.opensearch.client.opensearch.core.BulkRequest;
import org.opensearch.client.opensearch.core.BulkResponse;
import org.opensearch.client.opensearch.core.MsearchResponse;
import org.opensearch.client.opensearch.core.SearchResponse;
import org.opensearch.client.opensearch.core.search.Hit;
import org.opensearch.client.opensearch.core.search.Pit;
import org.opensearch.client.opensearch.generic.Requests;
import org.opensearch.client.opensearch.generic.Response;
import org.opensearch.client.transport.OpenSearchTransport;
import org.opensearch.client.transport.TransportOptions;
import org.opensearch.client.transport.httpclient5.ApacheHttpClient5TransportBuilder;

/**
 * The OpenSearch Java client (opensearch-java with its Apache HttpClient 5 transport) pointed at
 * the real crossrank proxy in front of the real node, each answer compared with the same call
 * made directly. The typed client does not expose response headers, so crossrank's own headers
 * are read through the same client's generic API.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ClientTest {
    private static final String INDEX = "t-java-client";
    private static final String POLICY = "t-java-client";
    private static final int DOCS = 40;

    private final String proxyUrl = System.getProperty("crossrank.url");
    private final String directUrl = System.getProperty("opensearch.url");
    private final String token = System.getProperty("crossrank.admin.token");

    private final Query query = Query.of(q -> q.match(m -> m.field("text")
        .query(FieldValue.of("cancer cells tumour growth"))));
    private final Query all = Query.of(q -> q.matchAll(m -> m));

    private OpenSearchClient proxy;
    private OpenSearchClient direct;
    private OpenSearchClient gzipped;
    private final List<OpenSearchTransport> transports = new ArrayList<>();

    private OpenSearchClient client(String url, boolean compressed, Timeout responseTimeout)
            throws URISyntaxException {
        ApacheHttpClient5TransportBuilder builder =
            ApacheHttpClient5TransportBuilder.builder(HttpHost.create(url)).setCompressionEnabled(compressed);
        if (responseTimeout != null) {
            // the I/O reactor looks at socket timeouts once per select interval (1 s by default)
            builder.setConnectionConfigCallback(config -> config.setSocketTimeout(responseTimeout))
                .setHttpClientConfigCallback(http -> http.setIOReactorConfig(IOReactorConfig.custom()
                    .setSelectInterval(TimeValue.ofMilliseconds(5)).build()));
        }
        OpenSearchTransport transport = builder.build();
        transports.add(transport);
        return new OpenSearchClient(transport);
    }

    private static List<String> ids(SearchResponse<JsonData> response) {
        return response.hits().hits().stream().map(Hit::id).collect(Collectors.toList());
    }

    private SearchResponse<JsonData> search(OpenSearchClient client, Query q, int size) throws IOException {
        return client.search(s -> s.index(INDEX).query(q).size(size), JsonData.class);
    }

    private static String header(Response response, String name) {
        return response.getHeaders().stream()
            .filter(entry -> entry.getKey().equalsIgnoreCase(name))
            .map(Map.Entry::getValue)
            .findFirst()
            .orElse(null);
    }

    /**
     * A raw call through the proxy with the same client's generic API, closed by the caller. The
     * HttpClient 5 transport sends only the transport options' headers, not a generic request's
     * own, so the admin token rides on the options.
     */
    private Response raw(OpenSearchClient client, String method, String endpoint, String json,
            Map<String, String> params) throws IOException {
        Requests.JsonBodyBuilder request = Requests.builder().method(method).endpoint(endpoint).query(params);
        if (json != null) {
            request.json(json);
        }
        TransportOptions admin = client._transport().options().toBuilder()
            .addHeader("x-crossrank-admin-token", token).build();
        return client.generic().withTransportOptions(admin).execute(request.build());
    }

    private Response raw(String method, String endpoint, String json, Map<String, String> params)
            throws IOException {
        return raw(proxy, method, endpoint, json, params);
    }

    private static JsonObject json(Response response) {
        try (JsonReader reader = Json.createReader(response.getBody().orElseThrow().body())) {
            return reader.readObject();
        }
    }

    private static final String SEARCH_BODY =
        "{\"query\": {\"match\": {\"text\": \"cancer cells tumour growth\"}}, \"size\": 10}";

    @BeforeAll
    void setUp() throws Exception {
        assertNotNull(proxyUrl, "-Dcrossrank.url is required");
        assertNotNull(directUrl, "-Dopensearch.url is required");
        proxy = client(proxyUrl, false, null);
        direct = client(directUrl, false, null);
        gzipped = client(proxyUrl, true, null);

        direct.indices().delete(d -> d.index(INDEX).ignoreUnavailable(true));
        proxy.indices().create(c -> c.index(INDEX)
            .settings(s -> s.numberOfShards(1).numberOfReplicas(0)));
        BulkRequest.Builder bulk = new BulkRequest.Builder().refresh(Refresh.True);
        for (int i = 0; i < DOCS; i++) {
            boolean relevant = i % 3 == 0;
            Map<String, String> doc = Map.of(
                "title", relevant ? "cancer cells study " + i : "bread and baking note " + i,
                "text", relevant ? "tumour growth in mice driven by cancer cells" : "a recipe with flour " + i);
            String id = "d" + i;
            bulk.operations(op -> op.index(idx -> idx.index(INDEX).id(id).document(doc)));
        }
        BulkResponse written = proxy.bulk(bulk.build());
        assertFalse(written.errors());
        assertEquals(DOCS, written.items().size());

        String policy = "{\"indices\": [\"" + INDEX + "\"], \"text_fields\": [\"title\", \"text\"],"
            + " \"window\": 20, \"score_mode\": \"replace\"}";
        try (Response put = raw("PUT", "/_crossrank/policies/" + POLICY, policy, Map.of())) {
            assertTrue(put.getStatus() == 200 || put.getStatus() == 201, put.getBody().map(b -> b.bodyAsString()).orElse(""));
        }
        // the proxy re-reads its policies every 0.5 s in the tests
        for (int attempt = 0; attempt < 50; attempt++) {
            try (Response r = raw("POST", "/" + INDEX + "/_search", SEARCH_BODY, Map.of())) {
                if ("reranked".equals(header(r, "x-crossrank-status"))) {
                    break;
                }
            }
            TimeUnit.MILLISECONDS.sleep(100);
        }
    }

    @AfterAll
    void tearDown() throws Exception {
        try (Response deleted = raw("DELETE", "/_crossrank/policies/" + POLICY, null, Map.of())) {
            assertTrue(deleted.getStatus() < 500);
        }
        direct.indices().delete(d -> d.index(INDEX).ignoreUnavailable(true));
        for (OpenSearchTransport transport : transports) {
            transport.close();
        }
    }

    @Test
    void theBulkRequestWroteEveryDocumentThroughTheProxy() throws IOException {
        assertEquals(DOCS, direct.count(c -> c.index(INDEX)).count());
    }

    @Test
    void aSearchWithAPolicyIsRerankedWithinTheFirstStageWindow() throws IOException {
        try (Response r = raw("POST", "/" + INDEX + "/_search", SEARCH_BODY, Map.of())) {
            assertEquals(200, r.getStatus());
            assertEquals("reranked", header(r, "x-crossrank-status"));
            assertEquals("rerank", header(r, "x-crossrank-arm"));
            assertTrue(header(r, "server-timing").contains("score"), header(r, "server-timing"));
        }
        SearchResponse<JsonData> reranked = search(proxy, query, 10);
        SearchResponse<JsonData> window = search(direct, query, 20);
        Set<String> inWindow = new HashSet<>(ids(window));
        assertEquals(10, reranked.hits().hits().size());
        assertTrue(inWindow.containsAll(ids(reranked)), ids(reranked) + " not within " + inWindow);
        assertEquals(window.hits().total().value(), reranked.hits().total().value());
        // the reranked page carries scores the client parses as numbers, best first
        double previous = Double.POSITIVE_INFINITY;
        for (Hit<JsonData> hit : reranked.hits().hits()) {
            assertNotNull(hit.score());
            assertTrue(hit.score() <= previous);
            previous = hit.score();
        }
    }

    @Test
    void rerankFalseIsExactlyOpenSearchsAnswer() throws IOException {
        // the HttpClient 5 transport sends no query parameter the typed request does not model
        // (TransportOptions' parameters are dropped), so ?rerank=false goes by the generic API
        JsonObject viaProxy;
        try (Response r = raw("POST", "/" + INDEX + "/_search", SEARCH_BODY, Map.of("rerank", "false"))) {
            assertEquals("bypassed", header(r, "x-crossrank-status"));
            viaProxy = json(r).getJsonObject("hits");
        }
        JsonObject viaDirect;
        try (Response r = raw(direct, "POST", "/" + INDEX + "/_search", SEARCH_BODY, Map.of())) {
            viaDirect = json(r).getJsonObject("hits");
        }
        assertEquals(viaDirect.getJsonArray("hits"), viaProxy.getJsonArray("hits"));
        assertEquals(viaDirect.get("max_score"), viaProxy.get("max_score"));
        assertEquals(viaDirect.get("total"), viaProxy.get("total"));
        SearchResponse<JsonData> typed = search(proxy, query, 10);
        assertEquals(ids(search(direct, query, 10)), viaProxy.getJsonArray("hits").stream()
            .map(hit -> hit.asJsonObject().getString("_id")).collect(Collectors.toList()));
        // the typed client reads max_score as a float
        assertEquals((float) viaDirect.getJsonNumber("max_score").doubleValue(),
            search(direct, query, 10).hits().maxScore());
        assertNotNull(typed.hits().maxScore());
    }

    @Test
    void aSearchOnAnIndexWithoutAPolicyPassesThrough() throws IOException {
        SearchResponse<JsonData> a = proxy.search(s -> s.index(".crossrank-none-*").query(query).size(3), JsonData.class);
        SearchResponse<JsonData> b = direct.search(s -> s.index(".crossrank-none-*").query(query).size(3), JsonData.class);
        assertEquals(ids(b), ids(a));
        assertEquals(b.hits().total().value(), a.hits().total().value());
    }

    @Test
    void msearchAnswersEachSearchRerankedWhereThePolicySays() throws IOException {
        MsearchResponse<JsonData> response = proxy.msearch(m -> m
            .searches(s -> s.header(h -> h.index(INDEX)).body(b -> b.query(query).size(5)))
            .searches(s -> s.header(h -> h.index(INDEX)).body(b -> b.query(all).size(3)
                .sort(o -> o.field(f -> f.field("_doc").order(SortOrder.Asc))))),
            JsonData.class);
        assertEquals(2, response.responses().size());
        assertTrue(response.responses().get(0).isResult());
        assertEquals(5, response.responses().get(0).result().hits().hits().size());
        SearchResponse<JsonData> sorted = direct.search(s -> s.index(INDEX).query(all).size(3)
            .sort(o -> o.field(f -> f.field("_doc").order(SortOrder.Asc))), JsonData.class);
        List<String> second = response.responses().get(1).result().hits().hits().stream()
            .map(Hit::id).collect(Collectors.toList());
        assertEquals(ids(sorted), second);
    }

    @Test
    void scrollPagesThroughAsOpenSearchDoes() throws IOException {
        SearchResponse<JsonData> first = proxy.search(s -> s.index(INDEX).scroll(t -> t.time("1m"))
            .query(all).size(15).sort(o -> o.field(f -> f.field("_doc").order(SortOrder.Asc))), JsonData.class);
        assertNotNull(first.scrollId());
        var second = proxy.scroll(s -> s.scrollId(first.scrollId()).scroll(t -> t.time("1m")), JsonData.class);
        SearchResponse<JsonData> everything = direct.search(s -> s.index(INDEX).query(all).size(30)
            .sort(o -> o.field(f -> f.field("_doc").order(SortOrder.Asc))), JsonData.class);
        List<String> paged = new ArrayList<>(ids(first));
        second.hits().hits().forEach(hit -> paged.add(hit.id()));
        assertEquals(ids(everything), paged);
        assertTrue(proxy.clearScroll(c -> c.scrollId(second.scrollId())).succeeded());
    }

    @Test
    void aPointInTimeSearchIsOpenSearchs() throws IOException {
        String pitId = proxy.createPit(p -> p.index(INDEX).keepAlive(t -> t.time("1m"))).pitId();
        assertNotNull(pitId);
        SearchResponse<JsonData> a = proxy.search(s -> s.pit(Pit.of(p -> p.id(pitId).keepAlive("1m")))
            .size(5).query(all).sort(o -> o.field(f -> f.field("_doc").order(SortOrder.Asc))), JsonData.class);
        SearchResponse<JsonData> b = direct.search(s -> s.pit(Pit.of(p -> p.id(pitId).keepAlive("1m")))
            .size(5).query(all).sort(o -> o.field(f -> f.field("_doc").order(SortOrder.Asc))), JsonData.class);
        assertEquals(ids(b), ids(a));
        assertEquals(1, proxy.deletePit(d -> d.pitId(pitId)).pits().size());
    }

    @Test
    void countIsOpenSearchs() throws IOException {
        assertEquals(direct.count(c -> c.index(INDEX).query(query)).count(),
            proxy.count(c -> c.index(INDEX).query(query)).count());
    }

    @Test
    void aMissingIndexRaisesTheSameExceptionStatusAndType() {
        OpenSearchException viaProxy = assertThrows(OpenSearchException.class,
            () -> proxy.search(s -> s.index("no-such-index-java").query(query), JsonData.class));
        OpenSearchException viaDirect = assertThrows(OpenSearchException.class,
            () -> direct.search(s -> s.index("no-such-index-java").query(query), JsonData.class));
        assertEquals(viaDirect.status(), viaProxy.status());
        assertEquals(404, viaProxy.status());
        assertEquals(viaDirect.error().type(), viaProxy.error().type());
        assertEquals("index_not_found_exception", viaProxy.error().type());
        assertEquals(viaDirect.error().reason(), viaProxy.error().reason());
    }

    @Test
    void compressedRequestsAndResponses() throws IOException {
        assertEquals(ids(search(proxy, query, 5)), ids(search(gzipped, query, 5)));
        var written = gzipped.index(i -> i.index(INDEX).id("gz").refresh(Refresh.True)
            .document(Map.of("title", "gzip", "text", "compressed body")));
        assertEquals("created", written.result().jsonValue());
        var read = direct.get(g -> g.index(INDEX).id("gz"), JsonData.class);
        assertEquals("compressed body", read.source().toJson().asJsonObject().getString("text"));
        direct.delete(d -> d.index(INDEX).id("gz").refresh(Refresh.True));
        // the compressing transport gzips the body: crossrank decodes it for the reranked search
        try (Response r = raw(gzipped, "POST", "/" + INDEX + "/_search", SEARCH_BODY, Map.of())) {
            assertEquals(200, r.getStatus());
            assertEquals("reranked", header(r, "x-crossrank-status"));
        }
    }

    @Test
    void aRequestTheClientGivesUpOnMidWayLeavesTheProxyServing() throws Exception {
        // the Java client gives up on a call by its socket timeout (cancelling the async client's
        // future does not reach the socket); one millisecond is shorter than any reranked search
        // that has to score (five was not: a Zen 4 EPYC answered a small window within it), and
        // a query never asked before cannot come from the score cache
        OpenSearchClient impatient = client(proxyUrl, false, Timeout.ofMilliseconds(1));
        Query fresh = Query.of(q -> q.match(m -> m.field("text")
            .query(FieldValue.of("cancer tumour growth " + System.nanoTime()))));
        Exception failure = assertThrows(Exception.class, () -> search(impatient, fresh, 10));
        assertTrue(failure.toString().toLowerCase().contains("timeout"), failure.toString());
        try (Response r = raw("POST", "/" + INDEX + "/_search", SEARCH_BODY, Map.of())) {
            assertEquals(200, r.getStatus());
            assertEquals("reranked", header(r, "x-crossrank-status"));
        }
    }
}
