import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.ParameterizedType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.opensearch.Version;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.PluginInfo;

/**
 * Starts one real OpenSearch node with its modules and plugins loaded from the classpath.
 *
 * Usage: java -cp 'lib/*:plugins/*' Launcher HOME PLUGIN_CLASS...
 *
 * The node's settings are HOME/config/opensearch.yml (written by crossrank/devnode/node.py), read
 * the way OpenSearch reads them. Directory-mode plugins cannot be used: k-NN extends
 * lang-painless, and Maven Central has only painless's jar, not an installable bundle. Classpath
 * plugins are how OpenSearch's own test framework (MockNode) starts nodes. The one source file
 * serves 2.x and 3.x: Node's plugin-taking constructor takes plugin classes in 2.x and
 * PluginInfo in 3.x, so it is found by reflection.
 */
public final class Launcher {

    private static final String LOG4J_CONFIG = String.join("\n",
        "status = error",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}]%marker %m%n",
        "rootLogger.level = info",
        "rootLogger.appenderRef.console.ref = console",
        "");

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Launcher HOME PLUGIN_CLASS...");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        Path config = home.resolve("config");
        Files.createDirectories(config);
        Files.write(config.resolve("log4j2.properties"), LOG4J_CONFIG.getBytes(StandardCharsets.UTF_8));

        Settings settings = Settings.builder().put("path.home", home.toString()).build();
        // reads config/opensearch.yml, as the distribution's launcher does
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), config, () -> "crossrank-node");
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env);

        Node node = newNode(env, Arrays.asList(args).subList(1, args.length));
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
        System.out.println("CROSSRANK_NODE_STARTED " + env.settings().get("http.port"));
        System.out.flush();
        stopped.await();
    }

    /** Node(Environment, Collection of plugin classes (2.x) or of PluginInfo (3.x), boolean). */
    private static Node newNode(Environment env, List<String> pluginClasses) throws Exception {
        Constructor<Node> constructor =
            Node.class.getDeclaredConstructor(Environment.class, Collection.class, boolean.class);
        constructor.setAccessible(true);
        ParameterizedType collection = (ParameterizedType) constructor.getGenericParameterTypes()[1];
        boolean takesInfo = collection.getActualTypeArguments()[0] == PluginInfo.class;
        List<Object> plugins = new ArrayList<>();
        for (String name : pluginClasses) {
            Class<? extends Plugin> type = Class.forName(name).asSubclass(Plugin.class);
            plugins.add(takesInfo
                ? new PluginInfo(name, "classpath plugin", "NA", Version.CURRENT, "1.8", name, null,
                    Collections.emptyList(), false)
                : type);
        }
        return constructor.newInstance(env, plugins, true);
    }
}
