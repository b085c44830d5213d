// Waits until a Kafka broker answers a metadata request (usage:
// node wait-ready.mjs host:port timeoutMs). Exit 0 when ready, 1 on timeout.
import { Kafka, logLevel } from "kafkajs";

const [brokers = "127.0.0.1:9092", timeoutArg = "60000"] = process.argv.slice(2);
const deadline = Date.now() + Number(timeoutArg);
const kafka = new Kafka({
  clientId: "recsys-wait-ready",
  brokers: brokers.split(","),
  logLevel: logLevel.NOTHING,
  connectionTimeout: 1000,
  retry: { retries: 0 },
});
for (;;) {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    await admin.fetchTopicMetadata({ topics: [] });
    await admin.disconnect();
    if (cluster.brokers.length > 0) process.exit(0);
  } catch {
    await admin.disconnect().catch(() => {});
  }
  if (Date.now() > deadline) {
    process.stderr.write(`[kafka] no broker answered at ${brokers}\n`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 250));
}
