import type {
	IDataObject,
	IExecuteFunctions,
	IHttpRequestMethods,
	INodeExecutionData,
	INodeType,
	INodeTypeDescription,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError, NodeConnectionTypes, NodeOperationError } from 'n8n-workflow';

import type {
	CancelBody,
	ErrorBody,
	OutcomeReport,
	OutcomeStatus,
	Request,
} from '../shared/api.generated';
import { REQUEST_ID_KEY } from '../shared/approval';

interface Answer {
	statusCode: number;
	body: unknown;
}

function errorCode(answer: Answer): string | undefined {
	const body = answer.body as Partial<ErrorBody> | undefined;
	return typeof body === 'object' && body !== null ? body.error?.code : undefined;
}

export class SignoffOutcome implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Signoff Report Outcome',
		name: 'signoffOutcome',
		icon: { light: 'file:signoff.svg', dark: 'file:signoff.dark.svg' },
		group: ['transform'],
		version: 1,
		subtitle: '={{ $parameter["status"] }}',
		description:
			'Tell signoff what the workflow did after the decision (executed, failed or skipped): the last entry of the request timeline',
		defaults: {
			name: 'Signoff Report Outcome',
		},
		usableAsTool: true,
		inputs: [NodeConnectionTypes.Main],
		outputs: [NodeConnectionTypes.Main],
		credentials: [
			{
				name: 'signoffApi',
				required: true,
			},
		],
		properties: [
			{
				displayName: 'Request ID',
				name: 'requestId',
				type: 'string',
				default: '',
				placeholder: 'req_… (empty: the request of this execution)',
				description:
					'The signoff request (req_…) the outcome is for. Empty: the request the Signoff Approval node created in this execution (items on its outputs also carry it as signoff.requestId).',
			},
			{
				displayName: 'Outcome',
				name: 'status',
				type: 'options',
				default: 'executed',
				options: [
					{
						name: 'Executed',
						value: 'executed',
						description: 'The approved action ran',
					},
					{
						name: 'Failed',
						value: 'failed',
						description: 'The action was attempted and failed',
					},
					{
						name: 'Skipped',
						value: 'skipped',
						description:
							'The action did not run (rejected or timed out). A request still pending is withdrawn first.',
					},
				],
			},
			{
				displayName: 'Detail',
				name: 'detail',
				type: 'string',
				default: '',
				description: 'What happened, in a sentence (shown in the request timeline)',
			},
		],
	};

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const items = this.getInputData();
		const credentials = await this.getCredentials('signoffApi');
		const base = String(credentials.serverUrl ?? '').replace(/\/+$/, '');
		const call = async (
			method: IHttpRequestMethods,
			path: string,
			body: object,
		): Promise<Answer> => {
			const answer = (await this.helpers.httpRequestWithAuthentication.call(this, 'signoffApi', {
				method,
				url: `${base}${path}`,
				body,
				json: true,
				returnFullResponse: true,
				ignoreHttpStatusErrors: true,
			})) as Answer;
			return answer;
		};
		const fail = (answer: Answer, itemIndex: number): never => {
			const body = (answer.body ?? {}) as Partial<ErrorBody>;
			throw new NodeApiError(this.getNode(), (answer.body ?? {}) as JsonObject, {
				httpCode: String(answer.statusCode),
				message: body.error?.message ?? `signoff answered ${answer.statusCode}`,
				itemIndex,
			});
		};

		const reported = new Map<string, IDataObject>();
		const returnData: INodeExecutionData[] = [];
		for (let itemIndex = 0; itemIndex < items.length; itemIndex++) {
			let requestId = String(this.getNodeParameter('requestId', itemIndex, '') ?? '').trim();
			if (!requestId) {
				requestId = String(this.customData.get(REQUEST_ID_KEY) ?? '');
			}
			if (!/^req_[A-Za-z0-9]+$/.test(requestId)) {
				throw new NodeOperationError(
					this.getNode(),
					requestId
						? `"${requestId}" is not a signoff request id (req_…)`
						: 'No request id: no Signoff Approval node ran in this execution, so set Request ID',
					{ itemIndex },
				);
			}
			// One execution usually carries one request on many items: report it once.
			let outcome = reported.get(requestId);
			if (outcome === undefined) {
				const status = this.getNodeParameter('status', itemIndex) as OutcomeStatus;
				const detail = String(this.getNodeParameter('detail', itemIndex, '') ?? '').trim();
				const report: OutcomeReport = { status };
				if (detail) {
					report.detail = detail.slice(0, 4000);
				}
				const path = `/v1/requests/${encodeURIComponent(requestId)}`;
				let withdrawn = false;
				let answer = await call('POST', `${path}/outcome`, report);
				if (errorCode(answer) === 'request_pending' && status !== 'executed') {
					// n8n stopped waiting before signoff decided: withdraw the request, so nobody
					// approves an action that will not run, then report what happened.
					const cancel: CancelBody = {
						reason: (detail || 'the workflow stopped waiting for the decision').slice(0, 4000),
					};
					const cancelled = await call('POST', `${path}/cancel`, cancel);
					if (cancelled.statusCode >= 400 && errorCode(cancelled) !== 'request_closed') {
						fail(cancelled, itemIndex);
					}
					withdrawn = cancelled.statusCode < 400;
					answer = await call('POST', `${path}/outcome`, report);
				}
				if (answer.statusCode < 300) {
					const request = answer.body as Request;
					outcome = { ...(request.outcome ?? report), alreadyReported: false, withdrawn };
				} else if (errorCode(answer) === 'outcome_reported') {
					outcome = { ...report, alreadyReported: true, withdrawn }; // a retried run
				} else {
					fail(answer, itemIndex);
				}
				reported.set(requestId, outcome as IDataObject);
			}
			returnData.push({
				json: { ...items[itemIndex].json, signoffOutcome: { requestId, ...outcome } },
				pairedItem: { item: itemIndex },
			});
		}
		return [returnData];
	}
}
