console.log('dpo: under construction');
