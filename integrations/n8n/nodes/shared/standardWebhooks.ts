/**
 * Standard Webhooks verification for signoff's decision callbacks, the TypeScript twin of the
 * Python core's `signoff.webhooks.Verifier` (both are checked against tests/vectors/webhooks.json).
 *
 * Signed content is `{webhook-id}.{webhook-timestamp}.{body}`. Two schemes:
 * - `v1a`: Ed25519. Receivers pin the server's public `whpk_` keys (a `whsk_` signing key, 32-byte
 *   seed or 64-byte seed + public key, verifies too).
 * - `v1`: HMAC-SHA256 with a shared `whsec_` secret.
 *
 * During a key rotation the header carries several space-separated signatures; one that matches a
 * held key is enough. Every failure throws `SignatureError` and nothing else. Only `crypto` is
 * used (no runtime dependencies).
 */
import {
	createHmac,
	createPrivateKey,
	createPublicKey,
	type KeyObject,
	timingSafeEqual,
	verify as verifySignatureBytes,
} from 'crypto';

import type { CallbackEvent } from './api.generated';

export const DEFAULT_TOLERANCE_SECONDS = 300;
const MAX_SIGNATURES = 16;
const MAX_ID_LENGTH = 255;
const EVENT_TYPES = new Set(['request.decided', 'request.expired', 'request.cancelled']);

// DER prefixes that wrap a raw 32-byte Ed25519 key as SPKI (public) or PKCS#8 (private seed).
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Any verification failure: missing or malformed headers, stale timestamp, no matching key. */
export class SignatureError extends Error {
	constructor(message: string) {
		super(message);
		this.name = 'SignatureError';
	}
}

/** What a verified signature vouches for. */
export interface SignedMessage {
	id: string;
	timestamp: number;
}

export type HeaderValue = string | string[] | undefined;

export interface VerifierOptions {
	/** How far `webhook-timestamp` may lie from now, in either direction (seconds). */
	toleranceSeconds?: number;
	/** The clock, in unix seconds (a seam for tests). */
	now?: () => number;
}

/** Strict base64 (standard alphabet, padded); undefined when `text` is not. */
function decodeBase64(text: string): Buffer | undefined {
	if (!BASE64.test(text)) {
		return undefined;
	}
	return Buffer.from(text, 'base64');
}

function decodeKey(key: string, prefix: string): Buffer {
	const raw = decodeBase64(key.slice(prefix.length));
	if (raw === undefined) {
		throw new Error(`${prefix} key is not valid base64`);
	}
	return raw;
}

function ed25519PublicKey(raw: Buffer): KeyObject {
	return createPublicKey({
		key: Buffer.concat([ED25519_SPKI_PREFIX, raw]),
		format: 'der',
		type: 'spki',
	});
}

function ed25519FromSigningKey(raw: Buffer): KeyObject {
	if (raw.length !== 32 && raw.length !== 64) {
		throw new Error(`a whsk_ key holds 32 or 64 bytes, not ${raw.length}`);
	}
	const privateKey = createPrivateKey({
		key: Buffer.concat([ED25519_PKCS8_PREFIX, raw.subarray(0, 32)]),
		format: 'der',
		type: 'pkcs8',
	});
	const publicKey = createPublicKey(privateKey);
	if (raw.length === 64) {
		const spki = publicKey.export({ format: 'der', type: 'spki' });
		if (!spki.subarray(ED25519_SPKI_PREFIX.length).equals(raw.subarray(32))) {
			throw new Error("this 64-byte whsk_ key's public half does not belong to its seed");
		}
	}
	return publicKey;
}

/** Split a credential field holding one or more keys (spaces, commas or new lines between). */
export function parseKeyList(text: string): string[] {
	return text
		.split(/[\s,]+/)
		.map((key) => key.trim())
		.filter((key) => key.length > 0);
}

function header(headers: Record<string, HeaderValue>, name: string): string {
	let value = headers[name];
	if (value === undefined) {
		for (const [key, item] of Object.entries(headers)) {
			if (key.toLowerCase() === name) {
				value = item;
				break;
			}
		}
	}
	if (Array.isArray(value)) {
		value = value.join(' ');
	}
	if (value === undefined) {
		throw new SignatureError(`missing ${name} header`);
	}
	return value;
}

/** Verifies signed callbacks against pinned keys (`whpk_…`, `whsk_…` or `whsec_…`). */
export class Verifier {
	private readonly ed25519: KeyObject[] = [];

	private readonly hmac: Buffer[] = [];

	private readonly toleranceSeconds: number;

	private readonly now: () => number;

	/** Throws a plain Error (a configuration mistake, not a bad callback) for unusable keys. */
	constructor(keys: Iterable<string>, options: VerifierOptions = {}) {
		for (const key of keys) {
			if (key.startsWith('whpk_')) {
				const raw = decodeKey(key, 'whpk_');
				if (raw.length !== 32) {
					throw new Error(`a whpk_ key holds 32 bytes, not ${raw.length}`);
				}
				this.ed25519.push(ed25519PublicKey(raw));
			} else if (key.startsWith('whsk_')) {
				this.ed25519.push(ed25519FromSigningKey(decodeKey(key, 'whsk_')));
			} else if (key.startsWith('whsec_')) {
				const raw = decodeKey(key, 'whsec_');
				if (raw.length === 0) {
					// An empty HMAC key would let anyone compute valid signatures: fail closed.
					throw new Error('a whsec_ secret must not be empty');
				}
				this.hmac.push(raw);
			} else {
				throw new Error("verification keys start with 'whpk_', 'whsk_' or 'whsec_'");
			}
		}
		if (this.ed25519.length === 0 && this.hmac.length === 0) {
			throw new Error('no webhook verification key is configured');
		}
		this.toleranceSeconds = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
		this.now = options.now ?? (() => Date.now() / 1000);
	}

	/** Check the headers' signature over the raw `body`; return the message id and timestamp. */
	verifySignature(body: Buffer, headers: Record<string, HeaderValue>): SignedMessage {
		const id = header(headers, 'webhook-id');
		const timestampText = header(headers, 'webhook-timestamp');
		const signatures = header(headers, 'webhook-signature');
		if (id.length === 0 || id.length > MAX_ID_LENGTH) {
			throw new SignatureError('webhook-id is empty or too long');
		}
		if (!/^[0-9]{1,12}$/.test(timestampText)) {
			throw new SignatureError('webhook-timestamp is not a unix time in seconds');
		}
		const timestamp = Number(timestampText);
		const drift = this.now() - timestamp;
		if (drift > this.toleranceSeconds) {
			throw new SignatureError('webhook-timestamp is too old (outside the tolerance)');
		}
		if (drift < -this.toleranceSeconds) {
			throw new SignatureError('webhook-timestamp is in the future (outside the tolerance)');
		}
		const entries = signatures.split(/\s+/).filter((entry) => entry.length > 0);
		if (entries.length === 0 || entries.length > MAX_SIGNATURES) {
			throw new SignatureError('webhook-signature holds no signatures, or too many');
		}
		const content = Buffer.concat([Buffer.from(`${id}.${timestampText}.`, 'utf8'), body]);
		for (const entry of entries) {
			const comma = entry.indexOf(',');
			const scheme = comma < 0 ? entry : entry.slice(0, comma);
			if (comma < 0 || (scheme !== 'v1' && scheme !== 'v1a')) {
				continue;
			}
			const signature = decodeBase64(entry.slice(comma + 1));
			if (signature === undefined) {
				continue;
			}
			if (scheme === 'v1a' && this.matchesEd25519(signature, content)) {
				return { id, timestamp };
			}
			if (scheme === 'v1' && this.matchesHmac(signature, content)) {
				return { id, timestamp };
			}
		}
		throw new SignatureError('no signature matches a known key');
	}

	/**
	 * Verify the signature, then read the body as a signoff callback event whose `id` is the
	 * `webhook-id` it was signed under.
	 */
	verify(body: Buffer, headers: Record<string, HeaderValue>): CallbackEvent {
		const message = this.verifySignature(body, headers);
		const event = parseJson(body.toString('utf8'));
		if (!isCallbackEvent(event)) {
			throw new SignatureError('the signed body is not a signoff callback event');
		}
		if (event.id !== message.id) {
			throw new SignatureError('the event id does not match the webhook-id header');
		}
		return event;
	}

	private matchesEd25519(signature: Buffer, content: Buffer): boolean {
		if (signature.length !== 64) {
			return false;
		}
		return this.ed25519.some((key) => verifySignatureBytes(null, content, key, signature));
	}

	private matchesHmac(signature: Buffer, content: Buffer): boolean {
		return this.hmac.some((secret) => {
			const expected = createHmac('sha256', secret).update(content).digest();
			return expected.length === signature.length && timingSafeEqual(expected, signature);
		});
	}
}

/** The parsed JSON, or undefined when `text` is not JSON. */
function parseJson(text: string): unknown {
	try {
		return JSON.parse(text) as unknown;
	} catch {
		return undefined;
	}
}

function isObject(value: unknown): value is Record<string, unknown> {
	return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The parts of a CallbackEvent the node relies on are there, with the right types. */
export function isCallbackEvent(value: unknown): value is CallbackEvent {
	if (!isObject(value) || typeof value.id !== 'string' || typeof value.type !== 'string') {
		return false;
	}
	if (!EVENT_TYPES.has(value.type) || !isObject(value.data)) {
		return false;
	}
	const request = value.data.request;
	return (
		isObject(request) &&
		typeof request.id === 'string' &&
		typeof request.status === 'string' &&
		isObject(request.correlation) &&
		isObject(request.action) &&
		Array.isArray(request.decisions)
	);
}
