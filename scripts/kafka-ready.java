// scripts/kafka.sh's readiness check for a cluster of several nodes: compiled
// once into the cache (javac) and run with the broker's own kafka-clients jar,
// so nothing else is fetched.
//
// Usage: java -cp CLASSES:LIBS/* KafkaReady BOOTSTRAP NODES RF TIMEOUT_SECONDS
//
// Waits until the cluster reports the brokers with ids 1..NODES (registered
// and unfenced) and, when RF > 0, until a probe topic with replication factor
// RF can be created; the probe topic is then deleted. Exits 0 when ready, 1
// at the deadline. Progress goes to stdout (kafka.sh sends it to stderr).

import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.Node;

class KafkaReady {
    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.out.println("usage: KafkaReady BOOTSTRAP NODES RF TIMEOUT_SECONDS");
            System.exit(2);
        }
        String bootstrap = args[0];
        int nodes = Integer.parseInt(args[1]);
        short rf = Short.parseShort(args[2]);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[3]));

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        Set<Integer> want = new TreeSet<>();
        for (int i = 1; i <= nodes; i++) {
            want.add(i);
        }
        String last = "";
        try (Admin admin = Admin.create(props)) {
            boolean registered = false;
            while (System.nanoTime() < deadline) {
                try {
                    if (!registered) {
                        Set<Integer> have = admin.describeCluster().nodes().get(5, TimeUnit.SECONDS).stream()
                            .map(Node::id).collect(Collectors.toCollection(TreeSet::new));
                        if (!have.containsAll(want)) {
                            last = "brokers registered: " + have + ", want " + want;
                            Thread.sleep(250);
                            continue;
                        }
                        registered = true;
                    }
                    if (rf <= 0) {
                        System.out.println("kafka-ready: brokers " + want + " registered");
                        return;
                    }
                    String probe = "kafka-sh-ready-" + UUID.randomUUID();
                    admin.createTopics(List.of(new NewTopic(probe, 1, rf))).all().get(10, TimeUnit.SECONDS);
                    admin.deleteTopics(List.of(probe)).all().get(10, TimeUnit.SECONDS);
                    System.out.println("kafka-ready: brokers " + want + " registered; created a topic with replication factor " + rf);
                    return;
                } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                    last = e.toString();
                    Thread.sleep(250);
                }
            }
        }
        System.out.println("kafka-ready: not ready at the deadline: " + last);
        System.exit(1);
    }
}
