// Kafka's own Java producer, as a team's existing pipeline would write tweets: each stdin line
// "KEY\tVALUE" becomes one record. Run as a single-file program with the broker's jars:
//   java -cp '.cache/kafka/4.1.1/lib/*' LineProducer.java BOOTSTRAP TOPIC CODEC [TXN]
// CODEC is a compression.type (none, gzip, snappy, lz4, zstd). With TXN (commit|abort) the
// lines go in one transaction that is committed or aborted.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.UUID;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class LineProducer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("compression.type", args[2]);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("linger.ms", "20");
        String txn = args.length > 3 ? args[3] : null;
        if (txn != null) {
            props.put("transactional.id", "line-producer-" + UUID.randomUUID());
        }
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            if (txn != null) {
                producer.initTransactions();
                producer.beginTransaction();
            }
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String line;
            while ((line = in.readLine()) != null) {
                int tab = line.indexOf('\t');
                byte[] key = line.substring(0, tab).getBytes(StandardCharsets.UTF_8);
                byte[] value = line.substring(tab + 1).getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(args[1], key, value));
            }
            producer.flush();
            if ("commit".equals(txn)) {
                producer.commitTransaction();
            } else if ("abort".equals(txn)) {
                producer.abortTransaction();
            }
        }
    }
}
