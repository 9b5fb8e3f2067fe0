"""The parts of a Lambda function ARN: arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]."""


class FunctionArnFields(object):
    def __init__(self, function_arn):
        parts = function_arn.split(':')
        if len(parts) < 7 or parts[0] != 'arn' or parts[5] != 'function':
            raise ValueError('Cannot parse given function ARN: {}'.format(function_arn))
        self.arn = function_arn
        self.region = parts[3]
        self.account_id = parts[4]
        self.name = parts[6]
        self.qualifier = parts[7] if len(parts) > 7 else ''
        self.unqualified_arn = ':'.join(parts[:7])

    @staticmethod
    def build_arn_string(region, account_id, name, qualifier):
        arn = 'arn:aws:lambda:{}:{}:function:{}'.format(region, account_id, name)
        return arn + ':' + qualifier if qualifier else arn

    @staticmethod
    def build_function_arn(unqualified_arn, qualifier=None):
        if qualifier:
            return '{}:{}'.format(unqualified_arn, qualifier)
        return unqualified_arn
