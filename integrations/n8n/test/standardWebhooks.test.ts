/**
 * The TypeScript verifier against the shared Standard Webhooks vectors (tests/vectors/webhooks.json),
 * the same file the Python core's verifier and signer are checked against.
 */
import { describe, expect, it } from 'vitest';

import vectors from '../../../tests/vectors/webhooks.json';
import {
	isCallbackEvent,
	parseKeyList,
	SignatureError,
	Verifier,
} from '../nodes/shared/standardWebhooks';
import {
	callbackEvent,
	closedRequest,
	decision,
	headersFor,
	newEd25519,
	publicOf,
	signatureHeader,
} from './helpers';

interface VectorCase {
	name: string;
	verify_keys: string[];
	signing_keys: string[];
	msg_id: string;
	timestamp: string;
	body: string;
	signature: string;
	now: number;
	expected: 'valid' | 'invalid';
	reason?: string;
}

const cases = vectors.cases as VectorCase[];

function verdictOf(vector: VectorCase): 'valid' | 'invalid' {
	const verifier = new Verifier(vector.verify_keys, {
		toleranceSeconds: vectors.tolerance_seconds,
		now: () => vector.now,
	});
	const headers = {
		'webhook-id': vector.msg_id,
		'webhook-timestamp': vector.timestamp,
		'webhook-signature': vector.signature,
	};
	try {
		const signed = verifier.verifySignature(Buffer.from(vector.body, 'utf8'), headers);
		expect(signed.id).toBe(vector.msg_id);
		expect(signed.timestamp).toBe(Number(vector.timestamp));
		return 'valid';
	} catch (error) {
		expect(error).toBeInstanceOf(SignatureError);
		return 'invalid';
	}
}

describe('shared Standard Webhooks vectors', () => {
	it('has the spec-published examples and both outcomes', () => {
		expect(cases.length).toBeGreaterThan(40);
		expect(cases.filter((c) => c.expected === 'valid').length).toBeGreaterThan(5);
		expect(cases.some((c) => c.name.startsWith('v1 spec-published'))).toBe(true);
		expect(cases.some((c) => c.name.startsWith('v1a spec-published'))).toBe(true);
	});

	it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, vector) => {
		expect(verdictOf(vector)).toBe(vector.expected);
	});

	it.each(
		cases
			.filter((c) => c.expected === 'valid' && c.signing_keys.length > 0)
			.map((c) => [c.name, c] as const),
	)('the test signer reproduces: %s', (_name, vector) => {
		const header = signatureHeader(
			vector.signing_keys,
			vector.msg_id,
			vector.timestamp,
			Buffer.from(vector.body, 'utf8'),
		);
		expect(header).toBe(vector.signature);
	});
});

describe('Verifier', () => {
	const keys = newEd25519();

	it('reads header names in any case, and array values', () => {
		const body = Buffer.from('{}');
		const headers = headersFor([keys.secret], body, 'msg_1');
		const verifier = new Verifier([keys.public]);
		expect(
			verifier.verifySignature(body, {
				'Webhook-Id': headers['webhook-id'],
				'WEBHOOK-TIMESTAMP': headers['webhook-timestamp'],
				'webhook-signature': [headers['webhook-signature']],
			}).id,
		).toBe('msg_1');
	});

	it('refuses a missing header', () => {
		const verifier = new Verifier([keys.public]);
		expect(() => verifier.verifySignature(Buffer.from('{}'), { 'webhook-id': 'x' })).toThrow(
			SignatureError,
		);
	});

	it('verify() returns the event and checks its id against webhook-id', () => {
		const request = closedRequest('approved', [decision('approve')]);
		const event = callbackEvent(request);
		const body = Buffer.from(JSON.stringify(event));
		const verifier = new Verifier([keys.public]);
		expect(verifier.verify(body, headersFor([keys.secret], body, event.id)).data.request.id).toBe(
			request.id,
		);
		expect(() => verifier.verify(body, headersFor([keys.secret], body, 'evt_other'))).toThrow(
			/does not match the webhook-id/,
		);
		const notJson = Buffer.from('not json');
		expect(() => verifier.verify(notJson, headersFor([keys.secret], notJson, 'evt_1'))).toThrow(
			SignatureError,
		);
	});

	it('rejects unusable keys with a plain configuration error', () => {
		expect(() => new Verifier([])).toThrow(/no webhook verification key/);
		expect(() => new Verifier(['sk_123'])).toThrow(/start with/);
		expect(() => new Verifier(['whpk_AAAA'])).toThrow(/32 bytes/);
		expect(() => new Verifier(['whsec_'])).toThrow(/must not be empty/);
		expect(() => new Verifier(['whpk_not base64!'])).toThrow(/base64/);
		const mismatched = `whsk_${Buffer.concat([
			Buffer.from(keys.secret.slice(5), 'base64'),
			Buffer.from(newEd25519().public.slice(5), 'base64'),
		]).toString('base64')}`;
		expect(() => new Verifier([mismatched])).toThrow(/does not belong/);
	});

	it('derives the public key from a whsk_ seed', () => {
		expect(publicOf(keys.secret)).toBe(keys.public);
	});

	it('parses a key list with spaces, commas and new lines', () => {
		expect(parseKeyList(' whpk_a, whpk_b\nwhsec_c  ')).toEqual(['whpk_a', 'whpk_b', 'whsec_c']);
		expect(parseKeyList('')).toEqual([]);
	});

	it('recognises callback events', () => {
		expect(isCallbackEvent(callbackEvent(closedRequest('approved', [])))).toBe(true);
		expect(isCallbackEvent({ type: 'request.decided', id: 'x', data: {} })).toBe(false);
		expect(isCallbackEvent({ type: 'other', id: 'x', data: { request: {} } })).toBe(false);
		expect(isCallbackEvent([])).toBe(false);
	});
});
