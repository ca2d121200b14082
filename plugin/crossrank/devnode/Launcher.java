import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

/**
 * Starts one real OpenSearch node with its modules and plugins loaded from the classpath.
 *
 * Usage: java -cp 'target/lib/*:target/plugins/*' Launcher HOME HTTP_PORT TRANSPORT_PORT
 *
 * Directory-mode plugins cannot be used: k-NN extends lang-painless, and Maven Central has only
 * painless's jar, not an installable bundle. Classpath plugins are how OpenSearch's own test
 * framework (MockNode) starts nodes.
 */
public final class Launcher {

    private static final List<String> PLUGIN_CLASSES = Arrays.asList(
        "org.opensearch.transport.Netty4Plugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.index.reindex.ReindexPlugin",
        "org.opensearch.knn.plugin.KNNPlugin",
        "org.opensearch.neuralsearch.plugin.NeuralSearch"
    );

    private static final String LOG4J_CONFIG = String.join("\n",
        "status = error",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}]%marker %m%n",
        "rootLogger.level = info",
        "rootLogger.appenderRef.console.ref = console",
        "");

    /** Node's plugin-taking constructor is protected; this is the whole reason for the subclass. */
    private static final class ClasspathNode extends Node {
        ClasspathNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Launcher HOME HTTP_PORT TRANSPORT_PORT");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        String httpPort = args[1];
        String transportPort = args[2];
        Path config = home.resolve("config");
        Files.createDirectories(config);
        Files.write(config.resolve("log4j2.properties"), LOG4J_CONFIG.getBytes(StandardCharsets.UTF_8));

        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "crossrank-dev")
            .put("node.name", "crossrank-node")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", transportPort)
            // Build machines may have nearly full disks; a dev node should not go read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();

        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), config, () -> "crossrank-node");
        LogConfigurator.registerErrorListener();
        LogConfigurator.configure(env);

        Node node = new ClasspathNode(env, loadPlugins());
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (IOException e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "crossrank-shutdown"));
        node.start();
        System.out.println("CROSSRANK_NODE_STARTED http://127.0.0.1:" + httpPort);
        System.out.flush();
        stopped.await();
    }

    @SuppressWarnings("unchecked")
    private static Collection<Class<? extends Plugin>> loadPlugins() throws ClassNotFoundException {
        Class<? extends Plugin>[] classes = new Class[PLUGIN_CLASSES.size()];
        for (int i = 0; i < classes.length; i++) {
            classes[i] = (Class<? extends Plugin>) Class.forName(PLUGIN_CLASSES.get(i));
        }
        return Arrays.asList(classes);
    }
}
