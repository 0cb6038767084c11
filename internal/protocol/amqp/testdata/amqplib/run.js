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
      // Header n comes back as the number it was (x-amqp-types).
      if (msg.properties.messageId !== 'id-' + i || msg.properties.headers.n !== i) headersOK = false;
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
  res.returned = await Promise.race([returned, new Promise(r => setTimeout(() => r(null), 5000).unref())]);

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

  // TTL: a per-message expiration drops the message; a queue's
  // x-message-ttl with a dead-letter queue moves it there as "expired".
  await ch2.assertQueue('js-ttl', { durable: true });
  ch2.sendToQueue('js-ttl', Buffer.from('short'), { expiration: '100' });
  ch2.sendToQueue('js-ttl', Buffer.from('long'), { expiration: '60000' });
  await ch2.assertQueue('js-expired', { durable: true });
  await ch2.assertQueue('js-ttl-dl', { durable: true, messageTtl: 100, deadLetterExchange: '', deadLetterRoutingKey: 'js-expired' });
  ch2.sendToQueue('js-ttl-dl', Buffer.from('stale'));
  await ch2.waitForConfirms();
  await new Promise(r => setTimeout(r, 500));
  const left = [];
  for (;;) {
    const m = await ch2.get('js-ttl', { noAck: true });
    if (!m) break;
    left.push(m.content.toString());
  }
  res.ttlLeft = left;
  res.expired = null;
  for (let tries = 0; tries < 50 && !res.expired; tries++) {
    const m = await ch2.get('js-expired', { noAck: true });
    if (m) {
      const deaths = m.properties.headers['x-death'] || [];
      res.expired = { body: m.content.toString(), reason: deaths.length ? deaths[0].reason : null };
    } else {
      await new Promise(r => setTimeout(r, 100));
    }
  }

  // RPC over direct reply-to: the requester consumes amq.rabbitmq.reply-to
  // without acks; a responder on another connection answers to the
  // reply-to it sees.
  await ch2.assertQueue('js-rpc', { durable: true });
  const responderConn = await amqp.connect(url);
  const responder = await responderConn.createChannel();
  await responder.consume('js-rpc', (msg) => {
    responder.sendToQueue(msg.properties.replyTo, Buffer.from('pong:' + msg.content.toString()), { correlationId: msg.properties.correlationId });
    responder.ack(msg);
  });
  const requester = await conn.createChannel();
  const reply = new Promise((resolve) => {
    requester.consume('amq.rabbitmq.reply-to', (msg) => resolve([msg.properties.correlationId, msg.content.toString()]), { noAck: true });
  });
  requester.sendToQueue('js-rpc', Buffer.from('ping'), { replyTo: 'amq.rabbitmq.reply-to', correlationId: 'rpc-1' });
  res.rpc = await Promise.race([reply, new Promise(r => setTimeout(() => r(null), 10000).unref())]);
  await responderConn.close();

  await conn.close();
  process.stdout.write(JSON.stringify(res));
}

main().catch((e) => { console.error(e); process.exit(1); });
