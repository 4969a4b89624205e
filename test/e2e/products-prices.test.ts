import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Stripe from 'stripe';
import { createApiKey } from '../../src/identity/merchants.ts';
import { stripeClient, rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: a merchant's catalogue (Products and one-time Prices) is made, read, changed, listed and searched through
// the official SDK as at Stripe; what Coffer cannot do (recurring prices, fractional amounts) and every bad input is
// refused by name and changes nothing; a catalogue stays with its merchant and mode.
describe('products and prices', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
  });
  after(async () => {
    await server.close();
  });

  /** Rows of the catalogue and its records, to prove that a refused request changed nothing. */
  async function catalogueCounts(): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const table of ['products', 'prices', 'events', 'audit_log'] as const) {
      const row = await server.database.db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
      counts[table] = Number(row.n);
    }
    return counts;
  }

  async function refusedWithNothingChanged(call: () => Promise<unknown>, param: string, message: RegExp, code?: string): Promise<void> {
    const before = await catalogueCounts();
    await assert.rejects(call(), (error: Stripe.errors.StripeError) => {
      assert.equal(error.param, param, error.message);
      assert.match(error.message, message);
      if (code !== undefined) assert.equal(error.code, code);
      return true;
    });
    assert.deepEqual(await catalogueCounts(), before, `refused (${param}) and nothing written`);
  }

  test('a product with a default price, read back, expanded, updated and archived', async () => {
    const product = await stripe.products.create({
      name: 'Coffee beans 1kg', description: 'Single origin', images: ['https://shop.example/beans.png'], metadata: { sku: 'B-1' },
      marketing_features: [{ name: 'Fair trade' }], shippable: true, unit_label: 'bag', url: 'https://shop.example/beans',
      default_price_data: { currency: 'usd', unit_amount: 2400, tax_behavior: 'exclusive' }, expand: ['default_price'],
    });
    assert.match(product.id, /^prod_/);
    assert.equal(product.object, 'product');
    assert.equal(product.active, true);
    assert.equal(product.type, 'service');
    assert.deepEqual(product.images, ['https://shop.example/beans.png']);
    assert.deepEqual(product.marketing_features, [{ name: 'Fair trade' }]);
    const price = product.default_price as Stripe.Price;
    assert.equal(price.object, 'price');
    assert.match(price.id, /^price_/);
    assert.equal(price.product, product.id);
    assert.equal(price.unit_amount, 2400);
    assert.equal(price.unit_amount_decimal, '2400');
    assert.equal(price.currency, 'usd');
    assert.equal(price.type, 'one_time');
    assert.equal(price.recurring, null);
    assert.equal(price.tax_behavior, 'exclusive');

    const read = await stripe.products.retrieve(product.id);
    assert.equal(read.default_price, price.id);
    const priceRead = await stripe.prices.retrieve(price.id, { expand: ['product'] });
    assert.equal((priceRead.product as Stripe.Product).name, 'Coffee beans 1kg');

    const second = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 2000, nickname: 'sale', lookup_key: 'beans_sale' });
    const updated = await stripe.products.update(product.id, { name: 'Coffee beans (1 kg)', default_price: second.id, description: '', metadata: { sku: '', origin: 'KE' } });
    assert.equal(updated.name, 'Coffee beans (1 kg)');
    assert.equal(updated.default_price, second.id);
    assert.equal(updated.description, null);
    assert.deepEqual(updated.metadata, { origin: 'KE' });
    assert.ok(updated.updated >= product.updated);

    // The default price cannot be archived; another can, and is then no longer listed as active.
    await refusedWithNothingChanged(() => stripe.prices.update(second.id, { active: false }), 'active', /default price of product/);
    const archived = await stripe.prices.update(price.id, { active: false });
    assert.equal(archived.active, false);
    assert.deepEqual((await stripe.prices.list({ product: product.id, active: true })).data.map((p) => p.id), [second.id]);
    assert.deepEqual((await stripe.prices.list({ product: product.id })).data.map((p) => p.id), [second.id, price.id], 'newest first');
    await refusedWithNothingChanged(() => stripe.products.update(product.id, { default_price: price.id }), 'default_price', /archived/);

    // A product with prices can only be archived; one without is deleted and reads as missing.
    await refusedWithNothingChanged(() => stripe.products.del(product.id), 'id', /has one or more prices/, 'product_has_prices');
    const inactive = await stripe.products.update(product.id, { active: false });
    assert.equal(inactive.active, false);
    const bare = await stripe.products.create({ name: 'Gift wrap' });
    assert.equal(bare.default_price, null);
    assert.deepEqual(await stripe.products.del(bare.id), { id: bare.id, object: 'product', deleted: true });
    await assert.rejects(stripe.products.retrieve(bare.id), (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.code === 'resource_missing');
    await assert.rejects(stripe.prices.create({ product: bare.id, currency: 'usd', unit_amount: 100 }), (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.param === 'product');

    // Each change is audited, and announced as Stripe's events.
    const events = await server.database.db.selectFrom('events').select('type').where('object_id', 'in', [product.id, price.id, second.id, bare.id]).orderBy('id').execute();
    const types = events.map((event) => event.type);
    for (const type of ['product.created', 'price.created', 'product.updated', 'price.updated', 'product.deleted']) assert.ok(types.includes(type), type);
    const audit = await server.database.db.selectFrom('audit_log').select('action').where('object_id', '=', bare.id).execute();
    assert.deepEqual(audit.map((row) => row.action).sort(), ['product.create', 'product.delete']);
  });

  test('the merchant\'s own product ids, product_data, lookup keys and transfer_lookup_key', async () => {
    const own = await stripe.products.create({ id: 'espresso-cup', name: 'Espresso cup', type: 'good' });
    assert.equal(own.id, 'espresso-cup');
    assert.equal(own.type, 'good');
    await refusedWithNothingChanged(() => stripe.products.create({ id: 'espresso-cup', name: 'Another' }), 'id', /already exists/, 'resource_already_exists');
    // The same id is free for another merchant: ids are the merchant's own.
    const other = stripeClient(server, server.otherSecretKey);
    assert.equal((await other.products.create({ id: 'espresso-cup', name: 'Their cup' })).name, 'Their cup');
    assert.equal((await stripe.products.retrieve('espresso-cup')).name, 'Espresso cup');

    const cup = await stripe.prices.create({ product: 'espresso-cup', currency: 'eur', unit_amount_decimal: Stripe.Decimal.from('900'), lookup_key: 'cup_standard', expand: ['product'] });
    assert.equal(cup.unit_amount, 900);
    assert.equal((cup.product as Stripe.Product).id, 'espresso-cup', 'a product with its own id expands too');
    const made = await stripe.prices.create({ currency: 'eur', unit_amount: 0, product_data: { name: 'Sample sachet', metadata: { kind: 'free' } } });
    assert.equal(made.unit_amount, 0, 'a free item is a price');
    const madeProduct = await stripe.products.retrieve(made.product as string);
    assert.equal(madeProduct.name, 'Sample sachet');
    assert.deepEqual(madeProduct.metadata, { kind: 'free' });

    // A lookup key names one price; moving it needs transfer_lookup_key, and the old holder loses it.
    await refusedWithNothingChanged(() => stripe.prices.create({ product: 'espresso-cup', currency: 'eur', unit_amount: 1000, lookup_key: 'cup_standard' }),
      'lookup_key', /already uses the lookup key 'cup_standard'.*transfer_lookup_key/);
    const dearer = await stripe.prices.create({ product: 'espresso-cup', currency: 'eur', unit_amount: 1000, lookup_key: 'cup_standard', transfer_lookup_key: true });
    assert.equal(dearer.lookup_key, 'cup_standard');
    assert.equal((await stripe.prices.retrieve(cup.id)).lookup_key, null);
    assert.deepEqual((await stripe.prices.list({ lookup_keys: ['cup_standard', 'nothing'] })).data.map((p) => p.id), [dearer.id]);
    const moved = await stripe.prices.update(cup.id, { lookup_key: 'cup_standard', transfer_lookup_key: true, nickname: 'old' });
    assert.equal(moved.lookup_key, 'cup_standard');
    assert.equal((await stripe.prices.retrieve(dearer.id)).lookup_key, null);

    // Two requests racing for one new key: one takes it, the other is refused by name; never two holders.
    const racing = await Promise.allSettled([1100, 1200].map((amount) => stripe.prices.create({ product: 'espresso-cup', currency: 'eur', unit_amount: amount, lookup_key: 'cup_race' })));
    assert.equal(racing.filter((outcome) => outcome.status === 'fulfilled').length, 1);
    const lost = racing.find((outcome) => outcome.status === 'rejected');
    assert.match(String((lost as PromiseRejectedResult).reason.message), /already uses the lookup key 'cup_race'/);

    // tax_behavior is set once, while unspecified.
    const taxed = await stripe.prices.update(dearer.id, { tax_behavior: 'inclusive' });
    assert.equal(taxed.tax_behavior, 'inclusive');
    await refusedWithNothingChanged(() => stripe.prices.update(dearer.id, { tax_behavior: 'exclusive' }), 'tax_behavior', /set only once/);
  });

  test('lists, filters and searches, within the merchant and mode', async () => {
    const a = await stripe.products.create({ name: 'Tea Sencha', metadata: { line: 'tea' }, shippable: true });
    const b = await stripe.products.create({ name: 'Tea Oolong', metadata: { line: 'tea' }, active: false });
    const c = await stripe.products.create({ name: 'Mug' });
    const first = await stripe.products.list({ limit: 2 });
    assert.deepEqual(first.data.map((p) => p.id), [c.id, b.id]);
    assert.equal(first.has_more, true);
    const next = await stripe.products.list({ limit: 2, starting_after: b.id });
    assert.equal(next.data[0]?.id, a.id);
    assert.deepEqual((await stripe.products.list({ ids: [a.id, c.id] })).data.map((p) => p.id), [c.id, a.id]);
    assert.equal((await stripe.products.list({ active: false })).data.some((p) => p.id === b.id), true);
    assert.equal((await stripe.products.list({ active: false })).data.some((p) => p.id === a.id), false);
    assert.deepEqual((await stripe.products.list({ shippable: true, ids: [a.id, b.id, c.id] })).data.map((p) => p.id), [a.id]);
    const teas = await stripe.products.search({ query: "name~'tea' AND metadata['line']:'tea' AND active:'true'" });
    assert.deepEqual(teas.data.map((p) => p.id), [a.id]);
    const all = [];
    for await (const product of stripe.products.list({ limit: 3 })) all.push(product.id);
    assert.equal(new Set(all).size, all.length, 'auto-pagination visits each product once');
    assert.ok(all.includes(a.id) && all.includes(c.id));

    const price = await stripe.prices.create({ product: a.id, currency: 'jpy', unit_amount: 1500 });
    const found = await stripe.prices.search({ query: `product:'${a.id}' AND currency:'jpy'` });
    assert.deepEqual(found.data.map((p) => p.id), [price.id]);
    assert.deepEqual((await stripe.prices.list({ type: 'recurring' })).data, [], 'Coffer has no recurring prices');
    assert.deepEqual((await stripe.prices.list({ currency: 'JPY', product: a.id })).data.map((p) => p.id), [price.id]);

    // Another merchant, and the same merchant's live mode, see none of it; expanding another's price gives nothing.
    const other = stripeClient(server, server.otherSecretKey);
    await assert.rejects(other.products.retrieve(a.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    await assert.rejects(other.prices.retrieve(price.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    assert.equal((await other.products.list({ ids: [a.id] })).data.length, 0);
    await assert.rejects(other.prices.create({ product: a.id, currency: 'usd', unit_amount: 100 }), (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.param === 'product');
    const live = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'secret', true)).key.reveal());
    assert.equal((await live.products.list({ ids: [a.id] })).data.length, 0);
  });

  test('bad input is refused by name and changes nothing', async () => {
    const product = await stripe.products.create({ name: 'Filter papers' });
    const refusals: Array<[() => Promise<unknown>, string, RegExp]> = [
      [() => stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 500, recurring: { interval: 'month' } }), 'recurring', /no subscriptions/],
      [() => stripe.prices.create({ product: product.id, currency: 'usd', unit_amount_decimal: Stripe.Decimal.from('12.5') }), 'unit_amount_decimal', /whole number of minor units/],
      [() => stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 500, unit_amount_decimal: Stripe.Decimal.from('500') }), 'unit_amount_decimal', /only specify one/],
      [() => stripe.prices.create({ product: product.id, currency: 'usd' }), 'unit_amount', /Missing required param: unit_amount/],
      [() => stripe.prices.create({ currency: 'usd', unit_amount: 500 }), 'product', /Missing required param: product/],
      [() => stripe.prices.create({ product: product.id, product_data: { name: 'x' }, currency: 'usd', unit_amount: 500 }), 'product_data', /only specify one/],
      [() => stripe.prices.create({ product: product.id, currency: 'xyz', unit_amount: 500 }), 'currency', /Invalid currency/],
      [() => stripe.prices.create({ product: product.id, currency: 'kwd', unit_amount: 1005 }), 'unit_amount', /multiple of 10/],
      [() => stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: -1 }), 'unit_amount', /must be at least 0/],
      [() => stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 100, billing_scheme: 'tiered' }), 'billing_scheme', /./],
      [() => stripe.prices.create({ product: 'prod_nothing', currency: 'usd', unit_amount: 100 }), 'product', /No such product/],
      [() => stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 100, transfer_lookup_key: true }), 'lookup_key', /needs the lookup_key/],
      [() => stripe.products.create({ name: '' }), 'name', /./],
      [() => stripe.products.create({ name: 'x', id: 'has space' }), 'id', /./],
      [() => stripe.products.create({ name: 'x', url: 'ftp://shop.example' }), 'url', /./],
      [() => stripe.products.create({ name: 'x', images: ['not a url'] }), 'images[0]', /./],
      [() => stripe.products.create({ name: 'x', default_price_data: { currency: 'usd', unit_amount: 100, recurring: { interval: 'month' } } }), 'default_price_data[recurring]', /no subscriptions/],
      [() => stripe.products.create({ name: 'x', tax_code: 'txcd_99999999' }), 'tax_code', /./],
      [() => stripe.products.update(product.id, { default_price: 'price_nothing' }), 'default_price', /No such price/],
      [() => stripe.products.update('prod_nothing', { name: 'y' }), 'id', /No such product/],
      [() => stripe.prices.update('price_nothing', { nickname: 'y' }), 'id', /No such price/],
    ];
    for (const [call, param, message] of refusals) await refusedWithNothingChanged(call, param, message);
    // A price of another product cannot be this one's default.
    const otherProduct = await stripe.products.create({ name: 'Kettle', default_price_data: { currency: 'usd', unit_amount: 4000 } });
    await refusedWithNothingChanged(() => stripe.products.update(product.id, { default_price: otherProduct.default_price as string }), 'default_price', /belongs to product/);
    // A price's amount never changes: the SDK's update has no such parameter, and the wire refuses it by name.
    const price = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 300 });
    const raw = await rawRequest(server, 'POST', `/v1/prices/${price.id}`, { key: server.secretKey, body: 'unit_amount=1' });
    assert.equal(raw.status, 400);
    assert.equal((raw.json.error as { param?: string }).param, 'unit_amount');
    assert.equal((await stripe.prices.retrieve(price.id)).unit_amount, 300);
  });

  test('a restricted key needs products or prices, and to read what it expands', async () => {
    const key = async (permissions: Record<string, 'read' | 'write'>) => stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions })).key.reveal());
    const product = await stripe.products.create({ name: 'Scale', default_price_data: { currency: 'usd', unit_amount: 3000 } });
    const productsOnly = await key({ products: 'write' });
    assert.equal((await productsOnly.products.retrieve(product.id)).name, 'Scale');
    await assert.rejects(productsOnly.prices.list(), (error: Stripe.errors.StripeError) => error.statusCode === 403);
    await assert.rejects(productsOnly.products.retrieve(product.id, { expand: ['default_price'] }), (error: Stripe.errors.StripeError) => error.statusCode === 403 && /prices/.test(error.message));
    const pricesRead = await key({ prices: 'read' });
    assert.equal((await pricesRead.prices.list({ product: product.id })).data.length, 1);
    await assert.rejects(pricesRead.prices.create({ product: product.id, currency: 'usd', unit_amount: 1 }), (error: Stripe.errors.StripeError) => error.statusCode === 403);
  });
});
