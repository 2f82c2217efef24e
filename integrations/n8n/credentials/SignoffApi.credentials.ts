import type {
	IAuthenticateGeneric,
	Icon,
	ICredentialTestRequest,
	ICredentialType,
	INodeProperties,
} from 'n8n-workflow';

/**
 * Where the signoff server is, the agent key the node creates requests with, and the key(s) it
 * verifies the signed decision callbacks with.
 */
export class SignoffApi implements ICredentialType {
	name = 'signoffApi';

	displayName = 'Signoff API';

	icon: Icon = { light: 'file:signoff.svg', dark: 'file:signoff.dark.svg' };

	documentationUrl = 'https://github.com/signoff-dev/signoff/blob/main/docs/n8n.md#credentials';

	properties: INodeProperties[] = [
		{
			displayName: 'Server URL',
			name: 'serverUrl',
			type: 'string',
			default: 'http://127.0.0.1:8080',
			required: true,
			placeholder: 'https://signoff.example.com',
			description: 'Base URL of the signoff server (without /v1)',
		},
		{
			displayName: 'Agent Key',
			name: 'apiKey',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			required: true,
			placeholder: 'sk_…',
			description:
				'An agent API key (sk_…), e.g. from `signoff keys create --agent n8n`. Requests are created as this agent.',
		},
		{
			displayName: 'Webhook Verification Key',
			name: 'webhookSecret',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			required: true,
			placeholder: 'whpk_… or whsec_…',
			description:
				"The key the signed decision callbacks are verified with: the server's Ed25519 public key (whpk_…, from GET /v1/keys) or the agent's HMAC secret (whsec_…). During a key rotation, list both keys separated by spaces or commas.",
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				Authorization: '=Bearer {{$credentials.apiKey}}',
			},
		},
	};

	test: ICredentialTestRequest = {
		request: {
			baseURL: '={{$credentials.serverUrl}}',
			url: '/v1/requests',
			qs: { limit: 1 },
		},
	};
}
