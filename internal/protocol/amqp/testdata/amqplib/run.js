// Runs amqplib against Weir (argument: the amqp:// URL) and prints what it
// saw as JSON; clients_test.go checks it.
'use strict';
const amqp = require('amqplib');

async function main() {
  const url = process.argv[2];
  const conn = await amqp.connect(url);
  const res = {};
  // Publisher confirms; the dead-letter queue exists before the queue
  // that names it (Weir resolves dead-lettering at declaration).
  const ch2 = await conn.createConfirmChannel();
  await ch2.assertQueue('js-dead', { durable: true });
  await ch2.assertQueue('js-work', { durable: true, deadLetterExchange: '', deadLetterRoutingKey: 'js-dead' });
  for (let i = 0; i < 20; i++) {
    ch2.sendToQueue('js-work', Buffer.from('m' + i), { persistent: true, messageId: 'id-' + i, headers: { n: i } });
  }
  await ch2.waitForConfirms();
  res.confirmed = 20;

  // Prefetch 5 with manual acks: count the most unacked at once.
  const cons = await conn.createChannel();
  await cons.prefetch(5);
  let outstanding = 0, maxOutstanding = 0, received = 0, rejected = 0, headersOK = true;
  await new Promise((resolve) => {
    cons.consume('js-work', (msg) => {
      outstanding++; received++;
      maxOutstanding = Math.max(maxOutstanding, outstanding);
      const i = Number(msg.content.toString().slice(1));
      if (msg.properties.messageId !== 'id-' + i || String(msg.properties.headers.n) !== String(i)) headersOK = false;
      setTimeout(() => {
        outstanding--;
        if (i % 5 === 0) { cons.reject(msg, false); rejected++; } else { cons.ack(msg); }
        if (received === 20) setTimeout(resolve, 100);
      }, 20);
    }, { noAck: false });
  });
  res.received = received;
  res.maxOutstanding = maxOutstanding;
  res.headersOK = headersOK;

  // Rejected messages reach the dead-letter queue.
  let dead = 0;
  for (let tries = 0; tries < 50 && dead < rejected; tries++) {
    const m = await cons.get('js-dead', { noAck: true });
    if (m) { dead++; } else { await new Promise(r => setTimeout(r, 100)); }
  }
  res.deadLettered = dead;

  // Mandatory return.
  const returned = new Promise((resolve) => ch2.on('return', (msg) => resolve(msg.content.toString())));
  ch2.publish('amq.direct', 'nowhere', Buffer.from('bounce'), { mandatory: true });
  await ch2.waitForConfirms();
  res.returned = await Promise.race([returned, new Promise(r => setTimeout(() => r(null), 5000))]);

  // Topic exchange routing.
  await ch2.assertExchange('js-topic', 'topic', { durable: true });
  const q = await ch2.assertQueue('', { exclusive: true });
  res.serverNamed = q.queue.startsWith('amq.gen-');
  await ch2.bindQueue(q.queue, 'js-topic', 'a.*.c');
  ch2.publish('js-topic', 'a.b.c', Buffer.from('yes'));
  ch2.publish('js-topic', 'a.b.d', Buffer.from('no'));
  await ch2.waitForConfirms();
  const routed = [];
  for (let tries = 0; tries < 20; tries++) {
    const m = await ch2.get(q.queue, { noAck: true });
    if (m) routed.push(m.content.toString()); else if (routed.length) break; else await new Promise(r => setTimeout(r, 50));
  }
  res.routed = routed;

  await conn.close();
  process.stdout.write(JSON.stringify(res));
}

main().catch((e) => { console.error(e); process.exit(1); });
